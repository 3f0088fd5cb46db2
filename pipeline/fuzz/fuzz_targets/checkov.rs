//! Any bytes given as checkov output: an error or findings, never a panic, a hang or unbounded memory;
//! and a success is fail-closed (`ingest::fail_closed_violation`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) =
        devsecops::ingest::parse_bytes("checkov", std::path::Path::new("fuzz-input"), data)
    {
        // Fail closed: nothing read is never a success, zero findings only with the envelope.
        if let Some(violation) = devsecops::ingest::fail_closed_violation("checkov", data, &parsed)
        {
            panic!("{violation}");
        }
    }
});
