#!/usr/bin/env bash
# Load benchmark: installs wrk and PostgreSQL if absent, builds release binaries, runs bench/run.py.
#   bench/run.sh [--duration SECONDS] [--connections N] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
apt_install wrk postgresql postgresql-client postgresql-contrib
ensure_postgres
log "building release binaries"
cargo build --release --locked -q -p devsecops-app --bin devsecops-app --example bare-health
exec python3 bench/run.py "$@"
