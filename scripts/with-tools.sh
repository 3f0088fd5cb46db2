#!/usr/bin/env bash
# Runs a command with the test command's tools: installs what is missing (scripts/lib.sh
# install_tools: the scanners' virtualenvs, cargo-deny, cargo-audit, helm, ...), puts them on PATH,
# and prepares the RustSec snapshot where devsecops.toml's cargo-audit scanner reads it. CI stages
# use it to run one step of scripts/test.sh on its own.
#
#   scripts/with-tools.sh target/debug/devsecops scan
#   scripts/with-tools.sh scripts/scan-image.sh devsecops-app:dev
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

if [ $# -eq 0 ]; then sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; fi
# Before minutes of installs: without the snapshot the scan cannot run at all.
if [ ! -d "$ADVISORY_DB_SRC/crates" ]; then
  echo "no RustSec advisory database at $ADVISORY_DB_SRC: run scripts/fetch-shared.sh ../shared (or set DEVSECOPS_ADVISORY_DB)" >&2
  exit 2
fi
install_tools >&2
prepare_advisory_db "$PWD/target/advisory-dbs" >/dev/null
exec "$@"
