#!/usr/bin/env bash
# Pipeline benchmark: builds the release binary and runs bench/pipeline.py (see its help).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
apt_install time
# The scan half needs every scanner of devsecops.toml, installed as the test command does.
install_tools
prepare_advisory_db "$PWD/target/advisory-dbs" >/dev/null
cargo build --release --locked -q -p devsecops
exec python3 bench/pipeline.py "$@"
