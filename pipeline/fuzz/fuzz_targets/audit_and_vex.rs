//! What `audit`, `sbom --nix` and VEX ingestion read, from arbitrary bytes: executables (an
//! embedded dependency list, a corrupt one, Rust without one), closures (path-info JSON), audit
//! reports and VEX documents. An error or a result, never a panic; a VEX statement that is
//! returned always names a product by purl, and one that accepts carries a reason.
#![no_main]

use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    use devsecops::audit::binary;
    let file = Path::new("fuzz-input");
    if let Some(format) = binary::format_of(data) {
        let _ = binary::classify(format, data);
    }
    let _ = devsecops::nix::closure_from_json(file, data);
    let _ = devsecops::audit::parse_report(file, data);
    for parse in [devsecops::vex::parse_openvex, devsecops::vex::parse_cyclonedx] {
        if let Ok((statements, _)) = parse(file, data) {
            for s in statements {
                assert!(!s.products.is_empty(), "a statement without a product");
                assert!(
                    s.status != devsecops::vex::Status::NotAffected
                        || s.justification.is_some()
                        || s.impact.is_some(),
                    "not_affected without a reason"
                );
            }
        }
    }
});
