#!/usr/bin/env bash
# Pipeline benchmark: builds the release binary and runs bench/pipeline.py (see its help).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
apt_install time
cargo build --release --locked -q -p devsecops
exec python3 bench/pipeline.py "$@"
