#!/usr/bin/env bash
# Fuzzes every devsecops input parser with cargo fuzz (libFuzzer), SECONDS_PER_TARGET each (default
# 10), starting from the kept corpus in pipeline/fuzz/corpus. New inputs go to a scratch directory
# (KEEP_CORPUS=1 adds them to the kept corpus; minimize it with `cargo fuzz cmin` before committing).
# A crash, out-of-memory or timeout fails the run and leaves the input in pipeline/fuzz/artifacts.
#   scripts/fuzz.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
cargo_tool cargo-fuzz cargo-fuzz "$CARGO_FUZZ_VERSION"
# cargo fuzz needs nightly flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
seconds="${SECONDS_PER_TARGET:-10}"
cd pipeline/fuzz
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  # Not a process substitution: its failure would go unseen and leave nothing to fuzz, a pass.
  listed=$(cargo fuzz list)
  mapfile -t targets <<<"$listed"
fi
if [ "${#targets[@]}" -eq 0 ] || [ -z "${targets[0]}" ]; then
  echo "no fuzz target to run: cargo fuzz list printed none" >&2
  exit 1
fi
# Safe Rust needs no AddressSanitizer to find panics, overflows and runaway allocations.
cargo fuzz build -s none -O 2>&1 | tail -n 3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  log "fuzzing $target for ${seconds}s"
  if [ -n "${KEEP_CORPUS:-}" ]; then out="corpus/$target"; else out="$scratch/$target"; fi
  mkdir -p "$out"
  set +e
  cargo fuzz run -s none -O "$target" "$out" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=262144 -print_final_stats=1 \
    >"$scratch/$target.log" 2>&1
  run_status=$?
  set -e
  grep -E "^(stat::number_of_executed_units|stat::new_units_added|==|SUMMARY|Done)" "$scratch/$target.log" || true
  # What failed, with the panic message the filter above leaves out.
  if [ "$run_status" -ne 0 ]; then
    grep -B2 -A6 "panicked at" "$scratch/$target.log" | head -n 20 >&2 || tail -n 30 "$scratch/$target.log" >&2
  fi
  # libFuzzer exits non-zero on a crash, an out-of-memory or a timeout and leaves the input behind;
  # either sign fails the step (before, a crash passed unless all three kinds of file existed).
  if [ "$run_status" -ne 0 ] || compgen -G "artifacts/$target/crash-*" >/dev/null ||
    compgen -G "artifacts/$target/oom-*" >/dev/null || compgen -G "artifacts/$target/timeout-*" >/dev/null; then
    echo "fuzz target $target found a failing input: pipeline/fuzz/artifacts/$target" >&2
    exit 1
  fi
done
