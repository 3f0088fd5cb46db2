#!/usr/bin/env bash
# devsecops audit benchmark: builds the release binary and runs bench/audit.py (see its help).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
# cargo-auditable for the fixture binaries, nix-bin for the closures, pytest for the shared fixtures.
install_tools
apt_install time
export DEVSECOPS_ADVISORY_DB="$ADVISORY_DB_SRC"
cargo build --release --locked -q -p devsecops
exec python3 bench/audit.py "$@"
