#!/usr/bin/env bash
# The unit and integration tests under coverage: cargo llvm-cov around cargo-nextest, on SQLite and
# PostgreSQL like scripts/test.sh. Writes
#   reports/coverage/lcov.info    LCOV, imported by SonarQube (sonar-project.properties)
#   reports/coverage/junit.xml    the test results, published by Jenkins' junit step
# and prints a per-file summary. The image tests are left out: they measure a binary inside a
# container, which instrumentation does not reach.
#
#   scripts/coverage.sh [NEXTEST ARGS...]      e.g. scripts/coverage.sh -p devsecops
#
# Installs the llvm-tools rustup component and cargo-llvm-cov once. Starts the local PostgreSQL
# through scripts/lib.sh unless TEST_POSTGRES_URL names one already.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

CARGO_LLVM_COV_VERSION=0.9.1
out=reports/coverage

rustup component list --installed 2>/dev/null | grep -q '^llvm-tools' || rustup component add llvm-tools-preview
cargo_tool cargo-llvm-cov cargo-llvm-cov "$CARGO_LLVM_COV_VERSION"
cargo_tool cargo-nextest cargo-nextest "$CARGO_NEXTEST_VERSION"
if [ -z "${TEST_POSTGRES_URL:-}" ]; then ensure_postgres; fi

# nextest writes JUnit only from a profile's settings: the project's own configuration plus a
# "coverage" profile (which inherits the default profile's timeouts) adding the JUnit file.
config=$(mktemp)
trap 'rm -f "$config"' EXIT
cat .config/nextest.toml - > "$config" <<'TOML'

[profile.coverage.junit]
path = "junit.xml"
TOML

scope=(--workspace --exclude devsecops-image-tests)
if [ $# -gt 0 ]; then scope=("$@"); fi

mkdir -p "$out"
cargo llvm-cov clean --workspace
status=0
cargo llvm-cov nextest --no-report --locked --config-file "$config" --profile coverage --no-fail-fast \
  "${scope[@]}" || status=$?
# Binaries the tests start with a cleared environment write default_*.profraw where they run.
find . -name 'default_*.profraw' -not -path './target/*' -delete
# Reports are written even when tests fail, so the failure is visible with its coverage.
cp target/nextest/coverage/junit.xml "$out/junit.xml" 2>/dev/null || true
cargo llvm-cov report --lcov --output-path "$out/lcov.info"
cargo llvm-cov report --summary-only
exit "$status"
