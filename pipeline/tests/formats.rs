//! The formats users bring, and the rules that keep findings truthful: every trivy report shape,
//! gitleaks v7 and null, checkov's summary, CycloneDX XML and nesting, semgrep/osv-scanner/grype/
//! KICS JSON, SARIF locations, CVSS v4, identifiers, deduplication, fixed versions and advisory
//! databases. Fixtures: tests/fixtures/real (the real tools) and tests/fixtures/schema (built from
//! each tool's documented schema and upstream data; sources in tests/fixtures/README.md).

use std::path::{Path, PathBuf};

use devsecops::ingest::{parse, parse_bytes, Parsed};
use devsecops::model::{deduplicate, fingerprint_all, Category, Severity};

fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name)
}

fn read(tool: &str, dir: &str, name: &str) -> Parsed {
    parse(tool, &fixture(dir, name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn bytes(tool: &str, text: &str) -> devsecops::error::Result<Parsed> {
    parse_bytes(tool, Path::new("input.json"), text.as_bytes())
}

#[test]
fn trivy_kubernetes_reports_in_every_shape_are_read() {
    let cluster = read("trivy", "schema", "trivy-k8s.json");
    let rules: Vec<&str> = cluster.findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(
        rules,
        ["CVE-2024-2961", "KSV017"],
        "PASS results are not findings"
    );
    assert!(cluster
        .findings
        .iter()
        .all(|f| f.severity == Severity::High));
    assert_eq!(cluster.findings[0].category, Category::Container);
    assert!(cluster.findings[0]
        .fixed_versions
        .contains("2.36-9+deb12u7"));
    assert!(
        cluster
            .warnings
            .iter()
            .any(|w| w.contains("kube-system/Pod/etcd") && w.contains("not scanned")),
        "a resource trivy could not scan is said: {:?}",
        cluster.warnings
    );
    let legacy = read("trivy", "schema", "trivy-k8s-legacy.json");
    assert_eq!(
        legacy.findings.len(),
        2,
        "Vulnerabilities and Misconfigurations groupings"
    );
    let consolidated = read("trivy", "schema", "trivy-k8s-consolidated.json");
    assert_eq!(consolidated.findings[0].rule, "KSV014");
    let old = read("trivy", "schema", "trivy-pre-0.20.json");
    assert_eq!(
        old.findings.len(),
        1,
        "a null Vulnerabilities list is zero, not an error"
    );
    assert_eq!(
        old.findings[0].fixed_versions.iter().collect::<Vec<_>>(),
        ["0.6.14", "1.6.1"]
    );
    let all_pkgs = read("trivy", "schema", "trivy-list-all-pkgs.json");
    assert_eq!(all_pkgs.findings.len(), 2);
    let zlib = &all_pkgs.findings[0];
    assert_eq!(
        zlib.component.as_ref().and_then(|c| c.purl.as_deref()),
        Some("pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian-12.5"),
        "trivy's own purl is kept"
    );
    assert!(zlib.fixed_versions.is_empty(), "will_not_fix: no fix");
    let empty = read("trivy", "real", "trivy-empty.json");
    assert!(empty.findings.is_empty() && empty.warnings.is_empty());
}

#[test]
fn a_gate_fails_on_a_trivy_cluster_report_with_high_findings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_devsecops"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run")
    };
    let report = fixture("schema", "trivy-k8s.json");
    let ingest = run(&["ingest", "--tool", "trivy", report.to_str().expect("utf-8")]);
    assert_eq!(
        ingest.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    assert!(String::from_utf8_lossy(&ingest.stdout).contains("ingested 2 finding(s)"));
    assert_eq!(
        run(&["gate"]).status.code(),
        Some(1),
        "HIGH findings fail the gate"
    );
}

#[test]
fn documents_that_are_not_the_report_are_errors_naming_what_was_expected() {
    for (tool, text, expect) in [
        ("trivy", "{}", "not a trivy JSON report: expected a report object with \"SchemaVersion\""),
        ("trivy", "{\"Foo\": []}", "not a trivy JSON report"),
        ("trivy", "\"text\"", "not a trivy JSON report"),
        ("trivy", "[{\"x\": 1}]", "none of its 1 result(s)"),
        ("sarif", "{\"version\":\"2.1.0\",\"runs\":[{\"tool\":{\"driver\":{\"name\":\"x\"}}}]}", "no \"results\" array"),
        ("sarif", "{\"version\":\"2.1.0\",\"runs\":[{\"tool\":{\"driver\":{\"name\":\"x\"}},\"invocations\":[{\"executionSuccessful\":false,\"toolExecutionNotifications\":[{\"message\":{\"text\":\"out of memory\"}}]}],\"results\":[]}]}", "did not run successfully: out of memory"),
        ("sarif", "[]", "not a SARIF report"),
        ("gitleaks", "{}", "not a gitleaks JSON report"),
        ("gitleaks", "[{\"rule\": 1}]", "none of its 1 leak(s)"),
        ("checkov", "{\"foo\": 1}", "not a checkov JSON report"),
        ("checkov", "{\"passed\": 3, \"failed\": 2}", "counts 2 failed check(s) but lists none"),
        ("cargo-audit", "{\"database\": {}}", "missing field `vulnerabilities`"),
        ("cargo-deny", "not json at all", "not a cargo-deny JSON report"),
        ("clippy", "{\"foo\": 1}\n", "not a cargo JSON messages report"),
        ("cyclonedx", "{\"bomFormat\":\"CycloneDX\",\"specVersion\":\"1.5\",\"components\":[]}", "a \"vulnerabilities\" array"),
        ("cyclonedx", "<bom xmlns=\"http://cyclonedx.org/schema/bom/1.4\"><components/></bom>", "a <vulnerabilities> element"),
        ("cyclonedx", "<html/>", "the root element is <html>"),
        ("cyclonedx", "name,version\n", "expected JSON"),
        ("semgrep", "{\"version\": \"1.0\"}", "missing field `results`"),
        ("osv-scanner", "{\"packages\": []}", "not a osv-scanner JSON report"),
        ("grype", "{\"source\": {}}", "not a grype JSON report"),
        ("kics", "{\"files_scanned\": 1}", "not a KICS JSON report"),
        ("hadolint", "{}", "not a hadolint JSON report"),
        ("shellcheck", "{\"comment\": []}", "missing field `comments`"),
    ] {
        let err = bytes(tool, text).err().unwrap_or_else(|| panic!("{tool} {text}: accepted"));
        let message = err.to_string();
        assert!(message.starts_with("input.json"), "{message}");
        assert!(message.contains(expect), "{tool} {text}: {message}");
        assert_eq!(err.exit_code(), 2);
    }
}

/// One rule for every format: a report that holds results none of which could be read is an
/// error, never "0 findings and some warnings"; one readable result beside them keeps the file.
#[test]
fn a_report_none_of_whose_results_can_be_read_is_an_error_in_every_format() {
    let all_bad = [
        ("sarif", r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"ruleId":1}]}]}"#),
        ("clippy", "{\"reason\":\"compiler-message\",\"message\":5}\n{\"reason\":\"build-finished\",\"success\":true}\n"),
        ("cargo-audit", r#"{"database":{},"vulnerabilities":{"found":true,"list":[{"advisory":5,"package":5}]},"warnings":{}}"#),
        ("cargo-audit", r#"{"vulnerabilities":{"list":[]},"warnings":{"unmaintained":[{"package":"x"}]}}"#),
        ("cargo-deny", "{\"type\":\"diagnostic\",\"fields\":{\"graphs\":5}}\n{\"type\":\"summary\",\"fields\":{}}\n"),
        ("trivy", r#"{"SchemaVersion":2,"Results":[{"Target":5}]}"#),
        ("trivy", r#"{"ClusterName":"c","Resources":[{"Namespace":5}]}"#),
        ("trivy", r#"{"ClusterName":"c","Resources":[{"Namespace":"a","Kind":"Pod","Name":"p","Error":"forbidden"}]}"#),
        ("gitleaks", r#"[{"rule": 1}]"#),
        ("checkov", r#"{"check_type":"terraform","results":{"failed_checks":[{"check_id":5}]},"summary":{"failed":1}}"#),
        ("hadolint", r#"[{"code":5}]"#),
        ("cyclonedx", r#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[],"vulnerabilities":[{"id":"CVE-2024-1","affects":[{"ref":"nowhere"}]}]}"#),
        ("cyclonedx", r#"<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><vulnerabilities><vulnerability><id>CVE-2024-1</id><affects><target><ref>nowhere</ref></target></affects></vulnerability></vulnerabilities></bom>"#),
        ("shellcheck", r#"{"comments":[{"line":"x"}]}"#),
        ("semgrep", r#"{"results":[{"check_id":5}],"errors":[]}"#),
        ("osv-scanner", r#"{"results":[{"source":{"path":"Cargo.lock","type":"lockfile"},"packages":[{"package":5}]}]}"#),
        ("osv-scanner", r#"{"results":[{"source":5}]}"#),
        ("grype", r#"{"matches":[{"vulnerability":5}],"source":{},"descriptor":{}}"#),
        ("kics", r#"{"queries":[],"queries_failed_to_execute":3}"#),
        ("kics", r#"{"queries":[{"query_name":5}]}"#),
    ];
    for (tool, text) in all_bad {
        let err = bytes(tool, text)
            .err()
            .unwrap_or_else(|| panic!("{tool} {text}: accepted with nothing read"));
        let message = err.to_string();
        assert!(
            message.starts_with("input.json") && message.contains("none of its"),
            "{tool} {text}: {message}"
        );
    }
    // One readable result keeps the file; the other is a warning, and the reading is counted.
    for (tool, text, findings) in [
        ("hadolint", r#"[{"code":"DL3007","file":"Dockerfile","level":"warning","line":1,"message":"m"},{"code":5}]"#, 1),
        ("clippy", "{\"reason\":\"compiler-message\",\"message\":5}\n{\"reason\":\"compiler-message\",\"message\":{\"message\":\"m\",\"level\":\"warning\",\"code\":null,\"spans\":[]}}\n", 0),
        ("osv-scanner", r#"{"results":[{"source":{"path":"Cargo.lock","type":"lockfile"},"packages":[{"package":5},{"package":{"name":"smallvec","version":"0.6.13","ecosystem":"crates.io"},"vulnerabilities":[]}]}]}"#, 0),
    ] {
        let parsed = bytes(tool, text).unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert_eq!(parsed.findings.len(), findings, "{tool}");
        assert_eq!((parsed.read, parsed.skipped, parsed.warnings.len()), (1, 1, 1), "{tool}");
    }
}

#[test]
fn one_malformed_result_is_skipped_with_a_warning_naming_its_index() {
    let report = r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"semgrep"}},"results":[
        {"ruleId":"a","message":{"text":"fine"}},
        {"ruleId":"b","message":"not an object"},
        {"ruleId":"c","message":{"text":"fine too"}}]}]}"#;
    let parsed = bytes("sarif", report).expect("the envelope is right");
    assert_eq!(parsed.findings.len(), 2);
    assert_eq!(parsed.warnings.len(), 1);
    assert!(
        parsed.warnings[0].starts_with("run #0 result #1 skipped: line 3, column"),
        "{:?}",
        parsed.warnings
    );
    let hadolint = bytes("hadolint", r#"[{"code":"DL3007","file":"Dockerfile","level":"warning","line":1,"message":"m"},{"code":"DL3008"}]"#)
        .expect("parses");
    assert_eq!((hadolint.findings.len(), hadolint.warnings.len()), (1, 1));
    assert!(hadolint.warnings[0].starts_with("entry #1 skipped"));
}

#[test]
fn gitleaks_v7_v8_and_null() {
    let v7 = read("gitleaks", "schema", "gitleaks-v7.json");
    assert_eq!(v7.findings.len(), 2);
    assert_eq!(v7.findings[0].rule, "AWS Secret Key");
    assert_eq!(
        v7.findings[0]
            .location
            .as_ref()
            .map(|l| (l.path.as_str(), l.start_line)),
        Some(("config/prod.env", Some(3)))
    );
    assert!(v7.findings.iter().all(|f| f.category == Category::Secret));
    assert!(read("gitleaks", "schema", "gitleaks-null.json")
        .findings
        .is_empty());
    assert_eq!(read("gitleaks", "real", "gitleaks.json").findings.len(), 1);
}

#[test]
fn checkov_summary_only_and_errors_with_real_positions() {
    assert!(read("checkov", "real", "checkov-empty.json")
        .findings
        .is_empty());
    let err = bytes(
        "checkov",
        "[{\"check_type\": \"dockerfile\", \"results\": {\"failed_checks\": 7}}]",
    )
    .expect_err("wrong type");
    assert!(
        err.to_string().contains("line 1, column 60"),
        "the position of the 7: {err}"
    );
    assert!(!err.to_string().contains("line 0"), "{err}");
}

#[test]
fn cyclonedx_xml_from_1_2_to_1_6_and_nested_components() {
    let ext = read("cyclonedx", "schema", "cyclonedx-1.2-ext.xml");
    assert_eq!(ext.findings.len(), 1);
    let f = &ext.findings[0];
    assert_eq!(
        (f.rule.as_str(), f.severity),
        ("CVE-2021-25900", Severity::Critical)
    );
    assert_eq!(
        f.component
            .as_ref()
            .map(|c| (c.name.as_str(), c.version.as_deref())),
        Some(("smallvec", Some("0.6.13")))
    );
    assert!(f.identifiers.contains("CWE-787"));
    let v14 = read("cyclonedx", "schema", "cyclonedx-1.4.xml");
    let time = &v14.findings[0];
    assert_eq!(time.severity, Severity::Medium);
    assert!(
        time.identifiers.contains("CVE-2020-26235")
            && time.identifiers.contains("RUSTSEC-2020-0071")
    );
    assert!(time.fixed_versions.contains("0.2.23"));
    let nested = read("cyclonedx", "schema", "cyclonedx-1.6-nested.xml");
    let h2 = &nested.findings[0];
    assert_eq!(
        h2.component
            .as_ref()
            .map(|c| (c.name.as_str(), c.version.as_deref(), c.purl.as_deref())),
        Some(("h2", Some("0.3.20"), Some("pkg:cargo/h2@0.3.20"))),
        "the reference resolves through the nesting"
    );
    assert_eq!(h2.severity, Severity::High, "CVSS 4.0 VA:H scores 8.7");
    let json = read("cyclonedx", "schema", "cyclonedx-nested.json");
    let t = json.findings[0].component.as_ref().expect("component");
    assert_eq!(
        (t.name.as_str(), t.version.as_deref()),
        ("time", Some("0.1.43")),
        "not the raw bom-ref"
    );
    // The nested JSON BOM and cargo-audit now agree on the package, so they merge.
    let audit = read("cargo-audit", "real", "cargo-audit.json");
    let merged = deduplicate(
        fingerprint_all(json.findings)
            .into_iter()
            .chain(fingerprint_all(audit.findings))
            .collect(),
    );
    let time = merged
        .iter()
        .find(|f| f.identifiers.contains("CVE-2020-26235"))
        .expect("time");
    assert_eq!(
        time.tools.iter().collect::<Vec<_>>(),
        ["cargo-audit", "cyclonedx"]
    );
}

#[test]
fn semgrep_json_code_and_dependency_findings() {
    let real = read("semgrep", "real", "semgrep.json");
    assert_eq!(real.findings.len(), 2);
    let pipe = real
        .findings
        .iter()
        .find(|f| f.rule == "semgrep.shell-pipe-to-shell")
        .expect("pipe");
    assert_eq!(
        (pipe.category, pipe.severity),
        (Category::Sast, Severity::High)
    );
    assert!(pipe.identifiers.contains("CWE-494"));
    // The SARIF of the same rules from the same semgrep gives the same rules.
    let sca = read("semgrep", "schema", "semgrep-supply-chain.json");
    let gin = &sca.findings[0];
    assert_eq!(
        (gin.category, gin.severity, gin.rule.as_str()),
        (Category::Sca, Severity::Medium, "CVE-2023-29401")
    );
    assert_eq!(
        gin.component.as_ref().and_then(|c| c.purl.as_deref()),
        Some("pkg:golang/github.com/gin-gonic/gin@1.9.0")
    );
    assert!(gin.fixed_versions.contains("1.9.1"));
    assert_eq!(
        gin.location.as_ref().map(|l| l.path.as_str()),
        Some("go.mod")
    );
    assert_eq!(
        gin.other_locations[0].path, "src/main.go",
        "the reachable call site"
    );
    assert_eq!(
        sca.warnings.len(),
        1,
        "semgrep's partial parse is a warning"
    );
}

#[test]
fn osv_scanner_findings_keep_their_package_and_merge_with_cargo_audit() {
    let osv = read("osv-scanner", "schema", "osv-scanner.json");
    assert_eq!(osv.findings.len(), 2, "one finding per group of aliases");
    let smallvec = &osv.findings[0];
    assert_eq!(smallvec.severity, Severity::Critical, "max_severity 9.8");
    assert_eq!(
        smallvec.fixed_versions.iter().collect::<Vec<_>>(),
        ["0.6.14", "1.6.1"]
    );
    let h2 = &osv.findings[1];
    assert_eq!(h2.severity, Severity::High, "the CVSS 4.0 vector is scored");
    let audit = read("cargo-audit", "real", "cargo-audit.json");
    let merged = deduplicate(
        fingerprint_all(osv.findings)
            .into_iter()
            .chain(fingerprint_all(audit.findings))
            .collect(),
    );
    let sv = merged
        .iter()
        .find(|f| f.identifiers.contains("CVE-2021-25900"))
        .expect("smallvec");
    assert_eq!(
        sv.tools.iter().collect::<Vec<_>>(),
        ["cargo-audit", "osv-scanner"]
    );
}

#[test]
fn grype_findings_ids_fixes_and_database() {
    let grype = read("grype", "schema", "grype.json");
    assert_eq!(grype.findings.len(), 3);
    let time = &grype.findings[0];
    assert!(
        time.identifiers.contains("CVE-2020-26235")
            && time.identifiers.contains("GHSA-wcg3-cvx6-7396")
    );
    assert!(time.fixed_versions.contains("0.2.23"));
    let cxf = &grype.findings[1];
    assert_eq!(cxf.severity, Severity::Critical);
    assert!(cxf.fixed_versions.is_empty(), "not-fixed");
    let zlib = &grype.findings[2];
    assert_eq!(zlib.category, Category::Container);
    assert_eq!(grype.databases.len(), 1);
    assert_eq!(
        grype.databases[0].updated.as_deref(),
        Some("2024-01-10T01:29:53Z")
    );
    // grype's SARIF rule ids glue the package to the CVE; the id is the CVE alone.
    let sarif = r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"Grype","rules":[{"id":"CVE-2019-12419-cxf-xjc-runtime"}]}},
        "results":[{"ruleId":"CVE-2019-12419-cxf-xjc-runtime","message":{"text":"m"}}]}]}"#;
    let from_sarif = bytes("sarif", sarif).expect("parses");
    assert_eq!(
        from_sarif.findings[0]
            .identifiers
            .iter()
            .collect::<Vec<_>>(),
        ["CVE-2019-12419"]
    );
}

#[test]
fn kics_queries_and_their_files() {
    let kics = read("kics", "schema", "kics.json");
    assert_eq!(kics.findings.len(), 3);
    assert!(kics.findings.iter().all(|f| f.category == Category::Iac));
    let fps = fingerprint_all(kics.findings);
    let mut unique: Vec<_> = fps.iter().map(|f| &f.fingerprint).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "two containers of one file stay apart");
    assert!(fps
        .iter()
        .any(|f| f.identifiers.contains("CWE-269") && f.severity == Severity::High));
}

#[test]
fn sarif_keeps_every_location() {
    let sarif = r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"codeql"}},"results":[{"ruleId":"r","message":{"text":"m"},
        "locations":[{"physicalLocation":{"artifactLocation":{"uri":"src/a.rs"},"region":{"startLine":3}}},
                     {"physicalLocation":{"artifactLocation":{"uri":"src/b.rs"},"region":{"startLine":9}}}]}]}]}"#;
    let f = &bytes("sarif", sarif).expect("parses").findings[0];
    assert_eq!(
        f.location.as_ref().map(|l| l.path.as_str()),
        Some("src/a.rs")
    );
    assert_eq!(
        f.other_locations
            .iter()
            .map(|l| (l.path.as_str(), l.start_line))
            .collect::<Vec<_>>(),
        [("src/b.rs", Some(9))]
    );
}

#[test]
fn cvss_v4_vectors_are_scored() {
    // A 9.1-ish critical advisory with only a CVSS 4.0 vector (RUSTSEC advisories carry them).
    let v4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N";
    assert_eq!(Severity::from_cvss_vector(v4), Some(Severity::Critical));
    assert_eq!(
        Severity::from_cvss_vector("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
        Some(Severity::Critical)
    );
    assert_eq!(
        Severity::from_cvss_vector("CVSS:3.1/AV:L/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H"),
        Some(Severity::Medium)
    );
    assert_eq!(
        Severity::from_cvss_vector("AV:N/AC:L/Au:N/C:P/I:P/A:P"),
        Some(Severity::High),
        "v2 7.5"
    );
    assert_eq!(Severity::from_cvss_vector("CVSS:3.1/AV:X"), None);
    let report = format!(
        r#"{{"database":{{}},"vulnerabilities":{{"list":[{{"advisory":{{"id":"RUSTSEC-2099-0001","title":"t","aliases":[],"cvss":"{v4}"}},"package":{{"name":"x","version":"1.0.0"}},"versions":{{"patched":[">=1.0.1"]}}}}]}},"warnings":{{}}}}"#
    );
    let f = &bytes("cargo-audit", &report).expect("parses").findings[0];
    assert_eq!(f.severity, Severity::Critical, "not medium");
    assert!(f.fixed_versions.contains(">=1.0.1"));
}

#[test]
fn identifiers_follow_their_documented_patterns() {
    use devsecops::model::identifiers_in;
    assert_eq!(
        identifiers_in("CVE-2019-12419-CXF-XJC-RUNTIME"),
        ["CVE-2019-12419"]
    );
    assert_eq!(
        identifiers_in("see ghsa-43W2-9J62-hq99 and RUSTSEC-2021-0003"),
        ["GHSA-43w2-9j62-hq99", "RUSTSEC-2021-0003"]
    );
    assert_eq!(identifiers_in("external/cwe/cwe-79"), ["CWE-79"]);
    assert_eq!(
        identifiers_in("PYSEC-2021-1 GO-2022-0001 OSV-2020-111 MAL-2024-1"),
        ["PYSEC-2021-1", "GO-2022-0001", "OSV-2020-111", "MAL-2024-1"]
    );
    assert!(identifiers_in("CVE-20-1 GHSA-aaaa-bbbb-cccc XCVE-2021-1234").is_empty());
}

#[test]
fn deduplication_keeps_loose_license_files_and_every_version_apart_or_together() {
    // Two GPL license files with no package (trivy 0.59 on a real tree) stay two findings.
    let licenses = read("trivy", "real", "trivy-license.json");
    let loose: Vec<_> = licenses
        .findings
        .iter()
        .filter(|f| f.category == Category::License)
        .collect();
    assert_eq!(loose.len(), 2);
    let merged = deduplicate(fingerprint_all(licenses.findings));
    assert_eq!(
        merged
            .iter()
            .filter(|f| f.category == Category::License)
            .count(),
        2,
        "{merged:#?}"
    );
    // Two versions of one crate with one advisory: one finding naming both versions.
    let two = r#"{"database":{},"vulnerabilities":{"list":[
        {"advisory":{"id":"RUSTSEC-2021-0003","aliases":["CVE-2021-25900"]},"package":{"name":"smallvec","version":"0.6.13"},"versions":{"patched":[">=0.6.14, <1.0.0"]}},
        {"advisory":{"id":"RUSTSEC-2021-0003","aliases":["CVE-2021-25900"]},"package":{"name":"smallvec","version":"1.6.0"},"versions":{"patched":[">=1.6.1"]}}]},"warnings":{}}"#;
    let merged = deduplicate(fingerprint_all(
        bytes("cargo-audit", two).expect("parses").findings,
    ));
    assert_eq!(merged.len(), 1);
    let versions: Vec<_> = merged[0]
        .components()
        .filter_map(|c| c.version.as_deref())
        .collect();
    assert_eq!(
        versions,
        ["0.6.13", "1.6.0"],
        "every affected version is kept"
    );
    assert_eq!(merged[0].fixed_versions.len(), 2);
}

#[test]
fn advisory_databases_are_recorded() {
    let audit = bytes(
        "cargo-audit",
        r#"{"database":{"advisory-count":900,"last-commit":"3157b0e2","last-updated":"2026-11-20T08:00:00Z"},"vulnerabilities":{"list":[]},"warnings":{}}"#,
    )
    .expect("parses");
    assert_eq!(audit.databases.len(), 1);
    assert_eq!(audit.databases[0].commit.as_deref(), Some("3157b0e2"));
}
