//! Reports on a fixed set of findings: insta snapshots of every format (a change to an output is a
//! reviewed diff), GitHub's identities for dependency results, and escaping: arbitrary strings in
//! every field of every finding never change the structure of the JUnit, SARIF, JSON or Markdown.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::{arbitrary_text, markdown_structure};
use devsecops::assess::{assess, Assessment, RunContext};
use devsecops::config::Config;
use devsecops::model::{fingerprint_all, AdvisoryDb, Category, RawFinding, Severity};
use devsecops::report::render;
use devsecops::store::ScannerError;
use proptest::prelude::*;
use time::macros::datetime;

fn raw_findings(text: &[String; 6]) -> Vec<RawFinding> {
    let [rule, title, path, package, version, tool] = text;
    let mut sast = RawFinding::new(tool, Category::Sast, Severity::High, rule, title)
        .at(path, Some(3), Some(4))
        .with_ids(["CWE-79"]);
    sast.description = Some(title.clone());
    sast.help_uri = Some(format!("https://example.com/{rule}"));
    let dependency = RawFinding::new(
        "cargo-audit",
        Category::Sca,
        Severity::Critical,
        "RUSTSEC-2021-0003",
        title,
    )
    .in_component(package, Some(version), "cargo")
    .with_ids(["CVE-2021-25900", "GHSA-43w2-9j62-hq99"])
    .fixed_by([">=0.6.14", version.as_str()]);
    let unfixed = RawFinding::new(
        tool,
        Category::Container,
        Severity::Medium,
        "CVE-2023-45853",
        title,
    )
    .in_component("zlib1g", Some("1:1.2.13"), "deb");
    let secret = RawFinding::new("gitleaks", Category::Secret, Severity::Low, rule, title)
        .at(path, None, None)
        .also_at("other/place.env", Some(7), None);
    vec![sast, dependency, unfixed, secret]
}

fn assessment(text: &[String; 6]) -> Assessment {
    let config = Config::default();
    let now = datetime!(2026-11-30 12:00 UTC);
    let findings = fingerprint_all(raw_findings(text));
    let run = RunContext {
        scanner_errors: vec![
            ScannerError {
                scanner: text[5].clone(),
                reason: text[1].clone(),
                optional: false,
            },
            ScannerError {
                scanner: "kics".into(),
                reason: "kics not found".into(),
                optional: true,
            },
        ],
        warnings: vec![format!("{}: result #2 skipped: {}", text[2], text[1])],
        databases: vec![AdvisoryDb {
            tool: "cargo-audit".into(),
            name: "RustSec advisory-db".into(),
            commit: Some("3157b0e2".into()),
            updated: Some("2026-11-01T00:00:00Z".into()),
        }],
        vex: Vec::new(),
        nothing_scanned: false,
    };
    assess(&config, findings, None, &[], &HashMap::new(), now, run)
}

fn fixed() -> [String; 6] {
    [
        "semgrep.rust.unsafe",
        "Unsafe block",
        "src/lib.rs",
        "smallvec",
        "0.6.13",
        "semgrep",
    ]
    .map(String::from)
}

#[test]
fn every_report_format_is_a_reviewed_snapshot() {
    let a = assessment(&fixed());
    for format in [
        "sarif",
        "sarif-open",
        "junit",
        "markdown",
        "metrics",
        "html",
    ] {
        let text = render(&a, format).expect("renders");
        insta::assert_snapshot!(format!("report_{format}"), text);
    }
    let json: serde_json::Value =
        serde_json::from_str(&render(&a, "json").expect("json")).expect("valid");
    insta::assert_json_snapshot!("report_json", json);
}

#[test]
fn two_crates_with_one_advisory_stay_two_github_alerts() {
    let config = Config::default();
    let raw = ["a-crate", "b-crate"]
        .map(|name| {
            RawFinding::new(
                "cargo-audit",
                Category::Sca,
                Severity::High,
                "RUSTSEC-2020-0071",
                "t",
            )
            .in_component(name, Some("1.0.0"), "cargo")
            .with_ids(["CVE-2020-26235"])
        })
        .to_vec();
    let a = assess(
        &config,
        fingerprint_all(raw),
        None,
        &[],
        &HashMap::new(),
        datetime!(2026-11-30 12:00 UTC),
        RunContext::default(),
    );
    let sarif: serde_json::Value =
        serde_json::from_str(&render(&a, "sarif").expect("sarif")).expect("json");
    let results = sarif["runs"][0]["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    let hashes: BTreeSet<&str> = results
        .iter()
        .map(|r| {
            r["partialFingerprints"]["primaryLocationLineHash"]
                .as_str()
                .expect("GitHub's key")
        })
        .collect();
    assert_eq!(hashes.len(), 2, "GitHub keeps them apart");
    for r in results {
        let region = &r["locations"][0]["physicalLocation"]["region"];
        assert!(
            region["startLine"].as_u64().is_some_and(|l| l >= 1),
            "every result has a region: {r}"
        );
    }
}

#[test]
fn sarif_artifact_uris_are_percent_encoded_and_relative_to_srcroot() {
    let raw = vec![
        RawFinding::new("semgrep", Category::Sast, Severity::High, "r", "t")
            .at("dir with space/a#b%c?.rs", Some(2), None)
            .also_at("ünïcode/日本.rs", Some(3), None)
            .also_at("/nix/store/abc-x y/bin/z", None, None)
            .also_at("C:\\win\\p.rs", Some(1), None),
    ];
    let a = assess(
        &Config::default(),
        fingerprint_all(raw),
        None,
        &[],
        &HashMap::new(),
        datetime!(2026-11-30 12:00 UTC),
        RunContext::default(),
    );
    let sarif: serde_json::Value =
        serde_json::from_str(&render(&a, "sarif").expect("sarif")).expect("json");
    let run = &sarif["runs"][0];
    assert!(
        run["originalUriBaseIds"]["%SRCROOT%"].is_object(),
        "the base is declared: {run}"
    );
    let locations: Vec<(&str, Option<&str>)> = run["results"][0]["locations"]
        .as_array()
        .expect("every location kept")
        .iter()
        .map(|l| {
            let artifact = &l["physicalLocation"]["artifactLocation"];
            (
                artifact["uri"].as_str().expect("uri"),
                artifact["uriBaseId"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        locations,
        [
            ("dir%20with%20space/a%23b%25c%3F.rs", Some("%SRCROOT%")),
            ("%C3%BCn%C3%AFcode/%E6%97%A5%E6%9C%AC.rs", Some("%SRCROOT%")),
            ("file:///nix/store/abc-x%20y/bin/z", None),
            ("C%3A/win/p.rs", Some("%SRCROOT%")),
        ]
    );
    // What devsecops writes, it reads back as the same files (SARIF in decodes the URIs).
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("out.sarif");
    std::fs::write(&file, render(&a, "sarif").expect("sarif")).expect("write");
    let again = devsecops::ingest::parse("sarif", &file).expect("reads its own SARIF");
    let f = &again.findings[0];
    let paths: Vec<String> = f
        .location
        .iter()
        .chain(&f.other_locations)
        .map(|l| l.path.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "dir with space/a#b%c?.rs",
            "ünïcode/日本.rs",
            "nix/store/abc-x y/bin/z",
            "C:/win/p.rs"
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn strings_from_scanners_never_change_a_report_structure(text in proptest::array::uniform6(arbitrary_text())) {
        let text: [String; 6] = text;
        let a = assessment(&text);
        let benign = assessment(&fixed());
        // JUnit: well-formed, with the same counts.
        let junit = render(&a, "junit").expect("junit");
        let doc = roxmltree::Document::parse(&junit).map_err(|e| TestCaseError::fail(format!("{e}: {junit}")))?;
        let count = |d: &roxmltree::Document, tag: &str| d.descendants().filter(|n| n.has_tag_name(tag)).count();
        let benign_junit = render(&benign, "junit").expect("junit");
        let benign_doc = roxmltree::Document::parse(&benign_junit).expect("benign");
        for tag in ["testsuite", "testcase", "failure", "error", "skipped"] {
            prop_assert_eq!(count(&doc, tag), count(&benign_doc, tag), "{} in {}", tag, junit);
        }
        // SARIF and JSON: valid JSON with one result per finding.
        for format in ["sarif", "sarif-open"] {
            let sarif: serde_json::Value = serde_json::from_str(&render(&a, format).expect("sarif")).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(sarif["version"].as_str(), Some("2.1.0"));
            prop_assert!(sarif["runs"][0]["results"].as_array().is_some_and(|r| r.len() == a.findings.len()));
        }
        let json: serde_json::Value = serde_json::from_str(&render(&a, "json").expect("json")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(json["findings"].as_array().map(Vec::len), Some(a.findings.len()));
        // Markdown: the same elements as with harmless strings, and no HTML at all.
        let markdown = render(&a, "markdown").expect("markdown");
        let structure = markdown_structure(&markdown);
        prop_assert!(!structure.iter().any(|e| e == "HTML" || e.contains("Link") || e.contains("Image")), "{}", markdown);
        prop_assert_eq!(structure, markdown_structure(&render(&benign, "markdown").expect("md")), "{}", markdown);
        // HTML: the strings never open an element.
        let html = render(&a, "html").expect("html");
        prop_assert!(!html.contains("<svg onload") && !html.contains("<b>bold") && !html.contains("<testcase"));
    }
}
