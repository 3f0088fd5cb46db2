#!/usr/bin/env bash
# Load benchmark: installs wrk, PostgreSQL and the peer stacks' virtualenv (bench/requirements-peers.txt)
# if absent, builds release binaries, runs bench/run.py.
#   bench/run.sh [--duration SECONDS] [--connections N] [--json FILE] [--instructions]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
apt_install wrk postgresql postgresql-client postgresql-contrib python3-venv valgrind
ensure_postgres
ensure_venv "$TOOLS_CACHE/bench-peers" bench/requirements-peers.txt
export BENCH_PEER_VENV="$TOOLS_CACHE/bench-peers"
log "building release binaries"
cargo build --release --locked -q -p devsecops-app --bin devsecops-app --example bare-health --example log-loss
exec python3 bench/run.py "$@"
