#!/usr/bin/env bash
# What response compression costs: the encoder per response (app/examples/compression-cost.rs),
# then the service under wrk on a page of 100 users with and without Accept-Encoding.
#   bench/compression.sh [--duration SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
apt_install wrk
log "building release binaries"
cargo build --release --locked -q -p devsecops-app --bin devsecops-app --example compression-cost
log "encoder cost per response (median of 200)"
target/release/examples/compression-cost 200
log "the service under wrk: GET /api/users?limit=100"
exec python3 bench/compression.py "$@"
