#!/usr/bin/env bash
# Runs a command (default: .ci/run, the test command) in a Debian 12 container on a host that is not
# Debian 12, such as GitHub's Ubuntu runners: the test command is written for Debian 12 (its package
# names, PostgreSQL 15). The container shares the host's network and Docker engine, and the parent
# directory of the checkout is mounted at the same path, so the image tests reach their containers on
# 127.0.0.1 and bind mounts resolve on the host as in the container. ../shared must be beside the
# checkout (scripts/fetch-shared.sh lays it out).
#
#   scripts/ci-debian.sh [--dry-run] [CMD ARGS...]
#
# Caches (cargo home with its tools, rustup, the test command's virtualenvs) live under
# CI_CACHE_DIR (default ~/.cache/devsecops-ci) so a CI cache can keep them between runs.
# --dry-run prints the docker command instead of running it.
# Inside the container the script runs itself with --inside: base packages, rustup, then CMD.
set -euo pipefail
cd "$(dirname "$0")/.."

RUST_TOOLCHAIN="${RUST_TOOLCHAIN:-1.95.0}"
IMAGE="${CI_DEBIAN_IMAGE:-debian:12}"

inside() {
  export DEBIAN_FRONTEND=noninteractive
  if ! command -v cc >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    apt-get update -qq
    # docker.io for its client only: the engine is the host's, through the mounted socket.
    apt-get install -y -qq --no-install-recommends ca-certificates curl git gcc libc6-dev make \
      pkg-config python3 python3-venv python3-pip docker.io xz-utils procps >/dev/null
  fi
  if ! command -v rustup >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/rustup" ]; then
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
      sh -s -- -y -q --profile minimal --default-toolchain "$RUST_TOOLCHAIN" -c clippy -c rustfmt
  fi
  export PATH="$HOME/.cargo/bin:$PATH"
  # The checkout belongs to the runner's user; git (and gitleaks through it) must accept it.
  git config --global --add safe.directory '*'
  exec "$@"
}

if [ "${1:-}" = "--inside" ]; then
  shift
  inside "$@"
fi

dry_run=0
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; shift; fi
if [ $# -eq 0 ]; then set -- .ci/run; fi

repo="$PWD"
parent="$(dirname "$repo")"
cache="${CI_CACHE_DIR:-$HOME/.cache/devsecops-ci}"
cmd=(docker run --rm --network host
  -v /var/run/docker.sock:/var/run/docker.sock
  -v "$parent:$parent" -v /tmp:/tmp
  -v "$cache/cargo:/root/.cargo" -v "$cache/rustup:/root/.rustup"
  -v "$cache/tools:/root/.cache/devsecops-platform"
  -w "$repo"
  -e CI -e FAST -e DEVSECOPS_SCHEMAS -e DEVSECOPS_ADVISORY_DB -e RUST_TOOLCHAIN="$RUST_TOOLCHAIN"
  "$IMAGE" scripts/ci-debian.sh --inside "$@")

if [ "$dry_run" -eq 1 ]; then
  printf '%q ' "${cmd[@]}"
  printf '\n'
  exit 0
fi
mkdir -p "$cache/cargo" "$cache/rustup" "$cache/tools"
exec "${cmd[@]}"
