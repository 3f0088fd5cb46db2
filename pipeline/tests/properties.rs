//! Property tests: fingerprints survive line shifts and message edits, stay distinct for distinct
//! findings, and deduplication is idempotent and order-independent.

use devsecops::model::{deduplicate, fingerprint_all, Category, RawFinding, Severity};
use proptest::prelude::*;

fn finding(rule: usize, file: usize, line: u32, snippet: usize, message: &str) -> RawFinding {
    let mut f = RawFinding::new(
        "semgrep",
        Category::Sast,
        Severity::Medium,
        &format!("rule-{rule}"),
        message,
    )
    .at(&format!("src/f{file}.rs"), Some(line), Some(line + 1));
    f.context = format!("let x{snippet} = y;");
    f
}

fn findings() -> impl Strategy<Value = Vec<(usize, usize, u32, usize)>> {
    proptest::collection::vec((0..5usize, 0..5usize, 1..1000u32, 0..4usize), 1..60)
}

fn fingerprints(raw: Vec<RawFinding>) -> Vec<String> {
    let mut fps: Vec<String> = fingerprint_all(raw)
        .into_iter()
        .map(|f| f.fingerprint)
        .collect();
    fps.sort();
    fps
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn shifting_lines_and_rewording_keeps_fingerprints(items in findings(), shift in 1..500u32) {
        let before = fingerprints(items.iter().map(|&(r, f, l, s)| finding(r, f, l, s, "message")).collect());
        // Every line moves by the same amount (code inserted above), every message changes.
        let after = fingerprints(items.iter().map(|&(r, f, l, s)| finding(r, f, l + shift, s, "another wording")).collect());
        prop_assert_eq!(before, after);
    }

    #[test]
    fn every_reported_finding_keeps_its_own_fingerprint(items in findings()) {
        let fps = fingerprints(items.iter().map(|&(r, f, l, s)| finding(r, f, l, s, "m")).collect());
        let mut unique = fps.clone();
        unique.dedup();
        prop_assert_eq!(unique.len(), fps.len(), "one report never merges its own findings");
    }

    #[test]
    fn deduplication_is_idempotent_and_order_independent(items in findings()) {
        let raw: Vec<RawFinding> = items.iter().map(|&(r, f, l, s)| finding(r, f, l, s, "m")).collect();
        let once = deduplicate(fingerprint_all(raw.clone()));
        let twice = deduplicate(once.clone());
        prop_assert_eq!(&once, &twice);
        let mut reversed = raw;
        reversed.reverse();
        let other_order = deduplicate(fingerprint_all(reversed));
        let a: Vec<_> = once.iter().map(|f| &f.fingerprint).collect();
        let b: Vec<_> = other_order.iter().map(|f| &f.fingerprint).collect();
        prop_assert_eq!(a, b);
        // The same report from a second tool merges into the first, listing both.
        let mut second: Vec<RawFinding> = items.iter().map(|&(r, f, l, s)| finding(r, f, l, s, "m")).collect();
        for f in &mut second { f.tool = "codeql".into(); }
        let mut merged = fingerprint_all(items.iter().map(|&(r, f, l, s)| finding(r, f, l, s, "m")).collect());
        merged.extend(fingerprint_all(second));
        let merged = deduplicate(merged);
        prop_assert_eq!(merged.len(), once.len());
        prop_assert!(merged.iter().all(|f| f.tools.len() == 2));
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let keys = prop_oneof![
        Just("runs"),
        Just("version"),
        Just("results"),
        Just("Results"),
        Just("SchemaVersion"),
        Just("ClusterName"),
        Just("Resources"),
        Just("matches"),
        Just("queries"),
        Just("vulnerabilities"),
        Just("comments"),
        Just("passed"),
        Just("failed"),
        Just("bomFormat"),
        Just("reason"),
        Just("type"),
        Just("tool"),
        Just("driver"),
        Just("name"),
        Just("Target"),
        Just("message"),
        Just("x"),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        prop_oneof![
            Just("2.1.0"),
            Just("CycloneDX"),
            Just("FAIL"),
            Just(""),
            Just("x")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((keys.clone(), inner), 0..5).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary JSON that is not a report never comes out as a silent "no findings": every
    /// parser answers with an error, or with findings, or with nothing only for a document that
    /// has the tool's envelope.
    #[test]
    fn documents_without_the_envelope_are_never_a_silent_zero(value in json_value()) {
        let text = value.to_string();
        for (tool, _) in devsecops::ingest::TOOLS {
            if let Ok(parsed) = devsecops::ingest::parse_bytes(tool, std::path::Path::new("x.json"), text.as_bytes()) {
                prop_assert!(
                    !parsed.findings.is_empty() || devsecops::ingest::has_envelope(tool, &value),
                    "{} read {} as zero findings", tool, text
                );
                let violation = devsecops::ingest::fail_closed_violation(tool, text.as_bytes(), &parsed);
                prop_assert!(violation.is_none(), "{:?} from {}", violation, text);
            }
        }
    }
}

/// A report of `tool` whose results are `items` (the envelope right, the results arbitrary).
fn enveloped(tool: &str, items: &str) -> String {
    match tool {
        "sarif" => format!(
            r#"{{"version":"2.1.0","runs":[{{"tool":{{"driver":{{"name":"x"}}}},"results":[{items}]}}]}}"#
        ),
        "hadolint" | "gitleaks" => format!("[{items}]"),
        "trivy" => format!(r#"{{"SchemaVersion":2,"Results":[{items}]}}"#),
        "semgrep" => format!(r#"{{"results":[{items}],"errors":[]}}"#),
        "grype" => format!(r#"{{"matches":[{items}]}}"#),
        "shellcheck" => format!(r#"{{"comments":[{items}]}}"#),
        "cargo-audit" => format!(r#"{{"vulnerabilities":{{"list":[{items}]}},"warnings":{{}}}}"#),
        "kics" => format!(r#"{{"queries":[{items}]}}"#),
        "osv-scanner" => format!(
            r#"{{"results":[{{"source":{{"path":"Cargo.lock","type":"lockfile"}},"packages":[{items}]}}]}}"#
        ),
        _ => unreachable!("{tool}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary results inside a right envelope: every one is either read or skipped with a
    /// warning, and a report none of whose results could be read is an error, never zero
    /// findings. (Could fail: a parser that drops a result silently, or answers Ok with nothing
    /// read, breaks it.)
    #[test]
    fn every_result_is_read_or_skipped_and_none_read_is_an_error(items in proptest::collection::vec(json_value(), 1..5)) {
        let n = items.len();
        let items = items.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",");
        for tool in ["sarif", "hadolint", "gitleaks", "trivy", "semgrep", "grype", "shellcheck", "cargo-audit", "kics", "osv-scanner"] {
            let text = enveloped(tool, &items);
            match devsecops::ingest::parse_bytes(tool, std::path::Path::new("x.json"), text.as_bytes()) {
                Ok(parsed) => {
                    prop_assert_eq!(parsed.read + parsed.skipped, n, "{} counted its {} results wrongly in {}", tool, n, text);
                    prop_assert!(parsed.read > 0, "{} read none of {} yet succeeded", tool, text);
                    prop_assert_eq!(parsed.warnings.len(), parsed.skipped, "{}: a warning per skipped result", tool);
                    let violation = devsecops::ingest::fail_closed_violation(tool, text.as_bytes(), &parsed);
                    prop_assert!(violation.is_none(), "{:?}", violation);
                }
                Err(e) => {
                    let message = e.to_string();
                    prop_assert!(message.starts_with("x.json"), "{}", message);
                }
            }
        }
    }
}

/// The fuzz targets assert [`devsecops::ingest::fail_closed_violation`] on every input: their
/// seed corpora (real and schema-built reports) hold it, so a finding of the fuzzer is a real one.
#[test]
fn the_fuzz_corpora_are_fail_closed() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut checked = 0;
    for (tool, _) in devsecops::ingest::TOOLS {
        let dir = corpus.join(tool.replace('-', "_"));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let bytes = std::fs::read(entry.path()).expect("corpus file");
            if let Ok(parsed) = devsecops::ingest::parse_bytes(tool, &entry.path(), &bytes) {
                let violation = devsecops::ingest::fail_closed_violation(tool, &bytes, &parsed);
                assert!(
                    violation.is_none(),
                    "{}: {violation:?}",
                    entry.path().display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 20, "the corpora were found ({checked} files)");
}
