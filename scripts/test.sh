#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine. It installs what it needs first (each step is
# skipped when already done), starts PostgreSQL, then runs every check. `.ci/run` calls exactly this.
#
#   scripts/test.sh            everything
#   FAST=1 scripts/test.sh     skip the fuzzing steps
#   STEPS=regex scripts/test.sh  only the steps whose name matches (grep -E, case-insensitive);
#                              the others are listed as not run, and the summary says so
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

passed=0
failed=0
failures=()
not_run=()
# run_step NAME CMD...: runs one check, records its result, and keeps going so one report shows all.
# Each check runs in a subshell with errexit, outside any condition (where bash would ignore it), so
# the first failing command of a multi-command check fails the check.
run_step() {
  local name="$1"
  shift
  if [ -n "${STEPS:-}" ] && ! grep -Eiq -- "$STEPS" <<<"$name"; then
    not_run+=("$name")
    return 0
  fi
  log "$name"
  local started=$SECONDS status=0
  set +e
  (set -e; "$@")
  status=$?
  set -e
  # A step that damages the host fails, and the damage is repaired so the next steps can run: a
  # /dev/null that is no longer the null device breaks every later cargo (rustc reads it as stdin).
  if ! null_device_ok; then
    echo "this step left /dev/null as: $(stat -c %F /dev/null 2>&1); recreating the null device" >&2
    restore_null_device
    status=1
  fi
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
    printf '    ok: %s (%ss)\n' "$name" "$((SECONDS - started))"
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf '    FAILED: %s (%ss)\n' "$name" "$((SECONDS - started))"
  fi
}

null_device_ok() { [ -c /dev/null ] && [ "$(stat -c %t:%T /dev/null)" = "1:3" ]; }
restore_null_device() { $SUDO rm -rf /dev/null && $SUDO mknod -m 666 /dev/null c 1 3; }

check_format() { cargo fmt --all -- --check; }
check_clippy() { cargo clippy --workspace --all-targets --locked -- -D warnings; }

check_supply_chain() {
  cargo fetch --locked -q
  local db
  db=$(prepare_advisory_db "$PWD/target/advisory-dbs")
  cargo deny --offline check
  cargo audit --no-fetch --stale --db "$db" --deny warnings
  check_suppressions
}

# Every suppression carries an owner and an expiry date; an expired one fails the build, and the
# reason given for RUSTSEC-2023-0071 (rsa is never built) must still hold.
check_suppressions() {
  local today status=0 line date
  today=$(date -u +%Y-%m-%d)
  while IFS= read -r line; do
    date=$(sed -n 's/.*expires: \([0-9-]*\).*/\1/p' <<<"$line")
    if [ -z "$date" ] || ! grep -q 'owner:' <<<"$line"; then
      echo "suppression without owner or expiry: $line" >&2; status=1
    elif [[ "$date" < "$today" ]]; then
      echo "suppression expired on $date: $line" >&2; status=1
    fi
  done < <(grep -rh 'expires:' .cargo/audit.toml deny.toml k8s/chart/templates || true)
  if [ -n "$(cargo tree --locked -i rsa --target all -e normal,build 2>/dev/null)" ]; then
    echo "rsa is now built: RUSTSEC-2023-0071 may no longer be suppressed" >&2; status=1
  fi
  return $status
}

run_tests() {
  cargo nextest run --workspace --locked --no-fail-fast
}

# Fuzzes the running service against its own OpenAPI document: no 5xx, no response outside the
# schema, valid data accepted and invalid data refused. The coverage phase is left out: it crashes
# inside hypothesis on this document (an upstream bug), the other three phases run in full.
fuzz_api() {
  local backend="$1" url port pid status=0 dir
  cargo build --locked -q -p devsecops-app
  dir=$(mktemp -d)
  case "$backend" in
    sqlite) url="sqlite://$dir/app.db" ;;
    postgres)
      local name="test_schemathesis_$$"
      as_postgres dropdb -p "$PG_PORT" --if-exists "$name"
      as_postgres createdb -p "$PG_PORT" -O "$PG_TEST_USER" "$name"
      url="${TEST_POSTGRES_URL%/*}/$name" ;;
  esac
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # Migrated before it starts, the service is ready at once: a readiness 503 while PostgreSQL
  # migrates in the background would be an error line in the log checked below.
  DATABASE_URL="$url" target/debug/devsecops-app migrate >/dev/null
  PORT="$port" DATABASE_URL="$url" API_TOKEN="schemathesis-token" DEBUG=true RATE_LIMIT_PER_SECOND=0 \
    target/debug/devsecops-app >"$dir/service.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  # app/tests/schemathesis.toml: 412 is a valid answer to a schema-valid precondition that fails.
  st --config-file app/tests/schemathesis.toml run "http://127.0.0.1:$port/openapi.json" \
    --checks all --phases examples,fuzzing,stateful \
    -H "Authorization: Bearer schemathesis-token" \
    --max-examples 100 --workers 2 --seed 20261126 || status=$?
  kill -TERM "$pid"
  wait "$pid" || status=$?
  if grep -q '"level":"error"' "$dir/service.log"; then
    echo "the service logged errors while fuzzed:" >&2
    grep '"level":"error"' "$dir/service.log" | head -20 >&2
    status=1
  fi
  rm -rf "$dir"
  return $status
}

check_scripts() { shellcheck -x scripts/*.sh bench/*.sh k8s/scripts/*.sh .ci/run; }

# devsecops reports against the official SARIF schema and JUnit well-formedness, from the real binary.
check_pipeline_reports() {
  cargo build --locked -q -p devsecops
  DEVSECOPS_BIN="$PWD/target/debug/devsecops" \
    DEVSECOPS_SCHEMAS="${DEVSECOPS_SCHEMAS:-$PWD/../shared/schemas}" \
    python3 -m pytest -q -p no:cacheprovider pipeline/tests --ignore=pipeline/tests/audit
}

# devsecops audit, SBOM and VEX on what ships: fixture binaries built with cargo auditable (cached
# in target/auditable-fixtures by the hash of their sources and the toolchain), real Nix closures
# and derivations from nix-bin, the RustSec snapshot, the official CycloneDX and OpenVEX schemas.
check_pipeline_audit() {
  cargo build --locked -q -p devsecops
  DEVSECOPS_BIN="$PWD/target/debug/devsecops" \
    DEVSECOPS_SCHEMAS="${DEVSECOPS_SCHEMAS:-$PWD/../shared/schemas}" \
    DEVSECOPS_ADVISORY_DB="$ADVISORY_DB_SRC" NIXPKGS_LIB="${NIXPKGS_LIB:-$PWD/../shared/nixpkgs-lib}" \
    python3 -m pytest -q -p no:cacheprovider pipeline/tests/audit
}

# The project's own gate: every scanner in devsecops.toml, in parallel, offline.
gate_self() {
  target/debug/devsecops scan
}

# The image first: the Rust tests include testcontainers tests of it (image-tests/).
# The image's tag, for the image tests (testcontainers) and the image checks.
export DEVSECOPS_IMAGE=devsecops-app:test
# The load test's image: the chart's load-test Job runs it in tests/render.
export DEVSECOPS_LOADTEST_IMAGE=devsecops-loadtest:test
build_image() {
  scripts/build-image.sh "$DEVSECOPS_IMAGE" >/dev/null
  scripts/build-image.sh --loadtest "$DEVSECOPS_LOADTEST_IMAGE" >/dev/null
}

# The image beyond testcontainers: size, labels, a private network, compose.yaml; its SBOM; and the
# pipelines' image scan (scripts/scan-image.sh): the binary inside it audited offline from its
# embedded dependency list, its layers scanned for secrets, gated by devsecops.
check_image() {
  python3 -m pytest -q -p no:cacheprovider tests/image
  # The image's SBOM: the service and exactly the crates compiled into its binary.
  target/debug/devsecops sbom --package devsecops-app -o reports/image-sbom.cdx.json
  DEVSECOPS_BIN="$PWD/target/debug/devsecops" scripts/scan-image.sh --offline "$DEVSECOPS_IMAGE"
  # An empty dependency list would audit nothing and pass: the embedded list must have been read.
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); n=d['lockfile']['dependency-count']; print(f'audited {n} crates embedded in the image binary'); sys.exit(0 if n > 100 else 1)" reports/image-scan/cargo-audit-bin.json
  # devsecops audit read the same list, fully: no file it could not read, nothing left unaudited.
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); n=d['binaries'][0]['crates']; print(f'devsecops audit: {n} crates in the image binary'); sys.exit(0 if n > 100 and not d['not_auditable'] and not d['errors'] else 1)" reports/image-scan/devsecops-audit.json
  # The load test's image passes the same gate, its binary read as fully.
  DEVSECOPS_BIN="$PWD/target/debug/devsecops" scripts/scan-image.sh --offline --out reports/image-scan-loadtest \
    "$DEVSECOPS_LOADTEST_IMAGE"
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); n=d['binaries'][0]['crates']; print(f'devsecops audit: {n} crates in the load-test image binary'); sys.exit(0 if n > 100 and not d['not_auditable'] and not d['errors'] else 1)" reports/image-scan-loadtest/devsecops-audit.json
}

# CI/CD definitions: workflows (GitHub schema, zizmor, pins, permissions), the Jenkinsfile (Groovy
# parse, stages, plugins, credentials), sonar-project.properties, deploy/rollback dry runs with helm.
check_cicd() {
  cargo build --locked -q -p devsecops
  DEVSECOPS_BIN="$PWD/target/debug/devsecops" \
    DEVSECOPS_SCHEMAS="${DEVSECOPS_SCHEMAS:-$PWD/../shared/schemas}" \
    python3 -m pytest -q -p no:cacheprovider tests/ci
}

check_kubernetes() {
  # docs/troubleshooting.md's commands are checked against this revision's binaries' --help.
  cargo build --locked -q -p devsecops-app -p devsecops
  DEVSECOPS_APP_BIN="$PWD/target/debug/devsecops-app" DEVSECOPS_BIN="$PWD/target/debug/devsecops" \
    DEVSECOPS_SCHEMAS="${DEVSECOPS_SCHEMAS:-$PWD/../shared/schemas}" \
    python3 -m pytest -q -p no:cacheprovider k8s/tests
}

# Every rendered configuration in the real Docker engine (tests/render): each pod spec of the chart's
# value sets and overlays as the kubelet runs it, compose.yaml's app, the NixOS module's unit; probes,
# preStop and SIGTERM within the grace period. Builds the image when this run has not.
check_renders() {
  { docker image inspect "$DEVSECOPS_IMAGE" && docker image inspect "$DEVSECOPS_LOADTEST_IMAGE"; } >/dev/null 2>&1 ||
    build_image
  NIXPKGS_LIB="${NIXPKGS_LIB:-$PWD/../shared/nixpkgs-lib}" python3 -m pytest -q -p no:cacheprovider tests/render
}

# Rules (promtool check and unit tests), Alertmanager routes (amtool), dashboards (schema, generator,
# conventions), Loki and Alloy configs, and the end-to-end run against the real Prometheus server.
check_observability() {
  cargo build --locked -q -p devsecops-app
  DEVSECOPS_APP_BIN="$PWD/target/debug/devsecops-app" \
    DEVSECOPS_SCHEMAS="${DEVSECOPS_SCHEMAS:-$PWD/../shared/schemas}" \
    python3 -m pytest -q -p no:cacheprovider observability/tests
}

# The load test as a user runs it (cargo run -p loadtest): a few seconds against the service it
# starts itself, every scenario run, zero errors. A smoke, not a speed: no latency rule.
smoke_loadtest() {
  local dir
  dir=$(mktemp -d)
  cargo run --locked -q -p loadtest -- --users 5 --ramp-up 1s --duration 3s --think-time 20ms..100ms \
    --p95 off --max-error-rate 0 --reports "$dir"
  test -s "$dir/report.html"
  python3 - "$dir/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["requests"] > 0 and s["failed"] == 0, s
assert {x["name"] for x in s["by_scenario"] if x["iterations"] > 0} == {"browse", "signup", "health"}, s["by_scenario"]
print(f"load test smoke: {s['requests']} requests, 0 errors")
PY
  rm -rf "$dir"
}

if ! null_device_ok; then
  echo "/dev/null is not the null device on this machine ($(stat -c %F /dev/null 2>&1)); recreating it" >&2
  restore_null_device
fi
# A full run tests only the image it builds: one left by an earlier checkout would let the image
# steps pass or fail on another binary when this run's build fails.
if [ -z "${STEPS:-}" ] && command -v docker >/dev/null; then
  docker image rm -f "$DEVSECOPS_IMAGE" "$DEVSECOPS_LOADTEST_IMAGE" >/dev/null 2>&1 || true
fi
log "installing what the tests need"
install_tools
ensure_postgres
drop_test_databases

run_step "rustfmt" check_format
run_step "clippy (deny warnings)" check_clippy
run_step "cargo-deny and cargo-audit (offline advisory database)" check_supply_chain
run_step "images: static auditable binaries, distroless images of the service and the load test" build_image
run_step "unit and integration tests (SQLite, PostgreSQL, the image in Docker)" run_tests
run_step "load test: goose users against the service, zero errors" smoke_loadtest
run_step "shellcheck" check_scripts
run_step "observability: rules, alerts, dashboards, logs, Prometheus end to end" check_observability
run_step "Kubernetes: chart lint, render, schemas, CRDs, Pod Security, checkov, snapshots, backup and restore scripts, troubleshooting commands" check_kubernetes
run_step "every rendered configuration runs: chart value sets and overlays, compose, NixOS unit" check_renders
run_step "devsecops reports: SARIF and CycloneDX schemas, JUnit, dashboard in Chromium" check_pipeline_reports
run_step "devsecops audit and VEX: Rust binaries of a real Nix closure, SBOM, OpenVEX and CycloneDX VEX, round trip" check_pipeline_audit
run_step "Nix: parse, lint, lock pins, image and appliance data, modules and their systemd units, VM test commands, flake derivations, yanked crates" scripts/check-nix.sh
run_step "devsecops scan: the project gates itself" gate_self
run_step "image: size, labels, private network, compose, SBOM, offline image scan" check_image
run_step "CI/CD: workflows, Jenkinsfile, Jenkins values, Sonar, deploy dry runs" check_cicd
if [ -z "${FAST:-}" ]; then
  run_step "fuzzing every devsecops parser (${SECONDS_PER_TARGET:-10} s each)" scripts/fuzz.sh
fi
if [ -z "${FAST:-}" ]; then
  run_step "schemathesis against the service on SQLite" fuzz_api sqlite
  run_step "schemathesis against the service on PostgreSQL" fuzz_api postgres
fi

echo
if [ "$failed" -gt 0 ]; then
  printf 'failed steps:\n'
  printf '  - %s\n' "${failures[@]}"
fi
if [ "${#not_run[@]}" -gt 0 ]; then
  printf 'not run (STEPS=%s):\n' "$STEPS"
  printf '  - %s\n' "${not_run[@]}"
fi
echo "steps: $passed passed, $failed failed, ${#not_run[@]} not run"
[ "$failed" -eq 0 ]
