#!/usr/bin/env bash
# Scans a built image and gates it with devsecops, apart from the repository's own scan:
#   - the image's binary (its ENTRYPOINT) copied out of the image, audited offline from the dependency list
#     cargo-auditable embedded in it (cargo audit bin and devsecops audit, against the RustSec
#     snapshot of scripts/lib.sh; their findings merge, and a binary without the list is a finding);
#   - trivy on the image: vulnerabilities and secrets; with --offline secrets only, since trivy's
#     vulnerability database cannot be downloaded without internet.
# Reports (SARIF, JUnit, JSON, Markdown) go to reports/image-scan/ (--out DIR: elsewhere, for a
# second image); exit 1 when the policy fails
# (critical and high, as in devsecops.toml). Accepted image findings, if ever needed, go to
# .devsecops/image-suppressions.toml (same format as .devsecops/suppressions.toml). With --base
# (CI passes the branch the change goes into), that file is read from the base commit, never from
# the change: a change cannot accept its own image's findings (pipeline/README.md). REF is a full
# ref (refs/remotes/origin/main) or a full commit id, so no tag or branch can shadow it.
#
#   scripts/scan-image.sh [--offline] [--base REF] [--out DIR] IMAGE
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
offline=0
base=""
out=reports/image-scan
while [ $# -gt 0 ]; do
  case "$1" in
    --offline) offline=1; shift ;;
    --base) [ $# -ge 2 ] || usage; base="$2"; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
    -*) usage ;;
    *) break ;;
  esac
done
if [ $# -ne 1 ]; then usage; fi
image="$1"
# The directory is emptied first: only an image scan's own, reports/image-scan or image-scan-*.
case "$(realpath -m -- "$out")/" in
  "$(realpath -m reports)/image-scan/" | "$(realpath -m reports)/image-scan-"?*/) ;;
  *) echo "scan-image.sh: --out $out: give reports/image-scan or reports/image-scan-<name>" >&2; exit 2 ;;
esac

# The accepted findings: the base's when given (fail closed: a base that cannot be read stops here).
# Relative to the reports directory, where its devsecops.toml is.
suppressions="$(realpath -m --relative-to="$out" .devsecops/image-suppressions.toml)"
base_suppressions=""
if [ -n "$base" ]; then
  if ! [[ "$base" == refs/?* || "$base" =~ ^([0-9a-f]{40}|[0-9a-f]{64})$ ]]; then
    echo "scan-image.sh: --base $base: give a full ref (refs/remotes/origin/<branch>) or a full commit id" >&2
    exit 2
  fi
  if ! commit=$(git rev-parse --verify --quiet --end-of-options "$base^{commit}"); then
    echo "scan-image.sh: the base $base is not in this clone: fetch it, then run again" >&2
    exit 2
  fi
  base_suppressions=$(mktemp)
  if git cat-file -e "$commit:.devsecops/image-suppressions.toml" 2>/dev/null; then
    git cat-file blob "$commit:.devsecops/image-suppressions.toml" > "$base_suppressions"
  fi
  changed=.devsecops/image-suppressions.toml
  [ -f "$changed" ] || changed=/dev/null
  if ! cmp -s "$base_suppressions" "$changed"; then
    echo "scan-image.sh: this change edits .devsecops/image-suppressions.toml; the gate uses the one of $base ($commit)" >&2
  fi
  suppressions="base-image-suppressions.toml"
fi
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
devsecops="${DEVSECOPS_BIN:-$(command -v devsecops || echo "$PWD/target/debug/devsecops")}"
rm -rf "$out"
mkdir -p "$out"
if [ -n "$base_suppressions" ]; then mv "$base_suppressions" "$out/base-image-suppressions.toml"; fi

# The image's own policy and paths, next to its findings; paths are relative to this file.
cat > "$out/devsecops.toml" <<TOML
[policy]
fail_on = ["critical", "high"]
mode = "all"
[policy.categories.secret]
fail_on = ["critical", "high", "medium", "low"]
[paths]
findings = "findings.json"
baseline = "baseline.json"
suppressions = "$suppressions"
history = "history.db"
reports = "."
TOML

cargo_tool cargo-audit cargo-audit "$CARGO_AUDIT_VERSION"
db=$(prepare_advisory_db "$PWD/target/advisory-dbs")
# The binary the image runs: its entrypoint (both images are one static binary).
entrypoint=$(docker image inspect --format '{{if .Config.Entrypoint}}{{index .Config.Entrypoint 0}}{{end}}' "$image")
if [ -z "$entrypoint" ]; then
  echo "scan-image.sh: $image has no ENTRYPOINT: no binary to audit" >&2
  exit 1
fi
# Copied into a directory of its own, so no name in the image can overwrite a report.
mkdir "$out/binary"
binary="$out/binary/$(basename "$entrypoint")"
container=$(docker create "$image")
trap 'docker rm -f "$container" >/dev/null 2>&1 || true' EXIT
docker cp "$container:$entrypoint" "$binary"
# cargo audit exits 1 when it finds something; devsecops decides what fails.
cargo audit --db "$db" --no-fetch --stale --json bin "$binary" > "$out/cargo-audit-bin.json" || true
"$devsecops" --config "$out/devsecops.toml" audit --db "$db" --output "$out/devsecops-audit.json" "$binary"
rm -rf "$out/binary"
"$devsecops" --config "$out/devsecops.toml" ingest --tool cargo-audit "$out/cargo-audit-bin.json"
"$devsecops" --config "$out/devsecops.toml" ingest --tool devsecops-audit "$out/devsecops-audit.json"

if [ "$offline" -eq 1 ]; then
  trivy image --scanners secret --skip-db-update --quiet --format json --output "$out/trivy-image.json" "$image"
else
  trivy image --scanners vuln,secret --quiet --format json --output "$out/trivy-image.json" "$image"
fi
"$devsecops" --config "$out/devsecops.toml" ingest --tool trivy "$out/trivy-image.json"
"$devsecops" --config "$out/devsecops.toml" gate --format sarif,junit,json,markdown
