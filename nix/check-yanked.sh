#!/usr/bin/env bash
# deny.toml's `yanked = "deny"`, enforced against crates.io's current index. cargo-deny reads the
# yanked flags from cargo's local index cache and never refreshes it (cargo-deny 0.20
# src/advisories/helpers/index.rs, `cached_krate`): in `nix flake check`'s sandbox that cache is
# empty, so cargo-deny only warns that it cannot check, and elsewhere it is as old as the last
# resolution. This refreshes the cache first (crates.io must be reachable), then runs cargo-deny
# offline with the pinned advisory snapshot (DEVSECOPS_ADVISORY_DB, else ../shared/advisory-db).
# Used by `nix run .#check-yanked` (nix/check-yanked.nix) and scripts/check-nix.sh.
# Usage: nix/check-yanked.sh [WORKSPACE]   (default: this repository)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
workspace=$(cd "${1:-$here}" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/scripts/lib.sh"
cd "$workspace"
# Resolving against the index fetches every dependency's index entry; --dry-run leaves Cargo.lock.
cargo update --dry-run --quiet
cargo fetch --locked --quiet
prepare_advisory_db "$workspace/target/advisory-dbs" >/dev/null
cargo deny --offline --locked check advisories
