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
                for f in &parsed.findings {
                    prop_assert!(!f.rule.is_empty() || f.tool == "sarif", "{} made a finding without a rule from {}", tool, text);
                }
            }
        }
    }
}
