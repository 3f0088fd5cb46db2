//! Any bytes given as semgrep output: an error or findings, never a panic, a hang or unbounded memory.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = devsecops::ingest::parse_bytes("semgrep", std::path::Path::new("fuzz-input"), data);
});
