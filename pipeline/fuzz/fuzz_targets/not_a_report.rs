//! Any JSON document through every parser: an error, findings, or "no findings" only when the
//! document has the tool's envelope (never a silent zero for something that is not a report).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for (tool, _) in devsecops::ingest::TOOLS {
        if let Ok(parsed) =
            devsecops::ingest::parse_bytes(tool, std::path::Path::new("fuzz-input"), data)
        {
            assert!(
                !parsed.findings.is_empty() || devsecops::ingest::has_envelope(tool, &value),
                "{tool} read a document without its envelope as zero findings"
            );
            if let Some(violation) = devsecops::ingest::fail_closed_violation(tool, data, &parsed) {
                panic!("{violation}");
            }
        }
    }
});
