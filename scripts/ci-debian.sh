#!/usr/bin/env bash
# Runs a command (default: .ci/run, the test command) in a Debian 12 container on a host that is not
# Debian 12, such as GitHub's Ubuntu runners and the MicroK8s host Jenkins builds on: the scripts are
# written for Debian 12 (its package names, a C compiler, python3-venv). The container shares the
# host's network and Docker engine, and the parent directory of the checkout is mounted at the same
# path, so the image tests reach their containers on 127.0.0.1, bind mounts resolve on the host as in
# the container, and ../shared (scripts/fetch-shared.sh) and Jenkins' credential files beside the
# workspace are visible.
#
#   scripts/ci-debian.sh [--dry-run] [CMD ARGS...]
#
# The container runs a prepared image, devsecops-ci:<key>: CI_DEBIAN_IMAGE (default debian:12) with
# the base packages below and every Debian package scripts/lib.sh install_tools installs, committed
# once per base image, package list and recipe (all three make the key). Caches (cargo home with its
# tools, rustup, the test command's virtualenvs) live under CI_CACHE_DIR (default
# ~/.cache/devsecops-ci). Files the root user in the container writes to the checkout, ../shared and
# the caches are handed back to the calling user afterwards.
# --dry-run (or CI_DEBIAN_DRY_RUN=1) prints the docker command instead of running it.
# Inside the container the script runs itself with --inside: rustup when absent, then CMD.
#
# Stopping it stops the container: the container's processes are not this script's children, so
# Jenkins' process-tree kill of an aborted or timed-out step (SIGTERM, then SIGKILL) would reach
# only the docker client. On SIGTERM, SIGINT or SIGHUP, and on any exit, the container is removed
# (docker rm -f); --init gives it a PID 1 (docker's tini) that passes signals on and reaps.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

RUST_TOOLCHAIN="${RUST_TOOLCHAIN:-1.95.0}"
BASE_IMAGE="${CI_DEBIAN_IMAGE:-debian:12}"
# What the scripts assume beyond a minimal Debian: a C compiler (cc crates), python3 with venv and
# pip (scripts/lib.sh virtualenvs), git, curl, the Docker client (the engine is the host's, through
# the mounted socket), the distribution's PostgreSQL (scripts/coverage.sh), a Java runtime (the
# SonarScanner CLI Jenkins installs), xz and ps; apt runs as root. The test command's packages
# (scripts/lib.sh TOOL_APT_PACKAGES: Chromium, Prometheus, groovy, ...) are baked in too, so no stage
# spends minutes in apt-get.
BASE_PACKAGES="ca-certificates curl git gcc libc6-dev make pkg-config python3 python3-venv python3-pip docker.io xz-utils procps postgresql postgresql-client default-jre-headless"
PACKAGES="$BASE_PACKAGES ${TOOL_APT_PACKAGES[*]}"
# How the image is prepared, on Docker's default bridge network so that nothing a package's scripts
# do sees or binds the host's ports: no daemon starts during the install (policy-rc.d answers 101,
# "action forbidden"), and PostgreSQL's packages create no cluster (postgresql-common reads
# create_main_cluster from createcluster.conf, which includes createcluster.d): scripts/lib.sh
# ensure_postgres creates it when a command needs it, on a port free at that moment.
# shellcheck disable=SC2016 # $PACKAGES expands in the container's shell
PREPARE_RECIPE='set -e
printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/no-main-cluster.conf
apt-get update -qq
apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
rm -rf /var/lib/apt/lists/*'
# Variables a stage hands to its command: CI settings, the SonarQube server and token that
# withSonarQubeEnv sets, the scanner Jenkins installed, registry and cluster credentials.
PASSED_ENV="CI FAST STEPS DEVSECOPS_SCHEMAS DEVSECOPS_ADVISORY_DB BRANCH_NAME BUILD_NUMBER
  SONAR_HOST_URL SONAR_AUTH_TOKEN SONAR_TOKEN SONAR_SCANNER_HOME
  REGISTRY_USERNAME REGISTRY_PASSWORD KUBECONFIG DEPLOY_STATE_DIR"

inside() {
  export PATH="$HOME/.cargo/bin:$PATH"
  if ! command -v rustup >/dev/null 2>&1; then
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
      sh -s -- -y -q --profile minimal --default-toolchain "$RUST_TOOLCHAIN" -c clippy -c rustfmt
  fi
  # The checkout belongs to the calling user; git (and gitleaks through it) must accept it.
  git config --global --add safe.directory '*'
  local status=0
  "$@" || status=$?
  if [ -n "${CI_HOST_UID:-}" ] && [ "$CI_HOST_UID" != 0 ]; then
    local path
    for path in "$PWD" "$(dirname "$PWD")/shared" /root/.cargo /root/.rustup /root/.cache/devsecops-platform; do
      if [ -e "$path" ]; then chown -R "$CI_HOST_UID:${CI_HOST_GID:-$CI_HOST_UID}" "$path"; fi
    done
  fi
  return "$status"
}

if [ "${1:-}" = "--inside" ]; then
  shift
  inside "$@"
  exit $?
fi

dry_run="${CI_DEBIAN_DRY_RUN:-0}"
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; shift; fi
if [ $# -eq 0 ]; then set -- .ci/run; fi

# The prepared image's tag: the base image's id (its name when it is not here yet), the packages and
# the recipe.
if [ "$dry_run" != 1 ] && ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  docker pull -q "$BASE_IMAGE" >&2
fi
base_id=$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || echo "$BASE_IMAGE")
key=$(printf '%s\n%s\n%s\n' "$base_id" "$PACKAGES" "$PREPARE_RECIPE" | sha256sum | cut -c1-16)
image="devsecops-ci:$key"

# interruptible CMD...: runs CMD in the background and waits for it. Bash runs a trap only between
# commands, and `wait` returns as soon as a signal arrives, where a foreground docker client would
# hold the trap until it ended by itself.
interruptible() {
  "$@" &
  wait "$!"
}

prepare_image() {
  docker image inspect "$image" >/dev/null 2>&1 && return 0
  echo "preparing $image from $BASE_IMAGE" >&2
  local status=0
  interruptible docker run --init --name "$prepare_container" -e DEBIAN_FRONTEND=noninteractive \
    -e PACKAGES="$PACKAGES" "$BASE_IMAGE" sh -c "$PREPARE_RECIPE" >&2 || status=$?
  if [ "$status" -eq 0 ]; then
    docker commit --change "LABEL devsecops-ci.prepared=$key" "$prepare_container" "$image" >/dev/null || status=$?
  fi
  docker rm -f "$prepare_container" >/dev/null
  [ "$status" -eq 0 ] || { echo "preparing $image failed" >&2; return "$status"; }
  # Images of earlier package lists or bases are not used again: those prepared more than a day ago
  # that no container uses go. A younger one may belong to a run of another recipe on this host that
  # has yet to start its container.
  docker image prune -af --filter label=devsecops-ci.prepared --filter until=24h >/dev/null 2>&1 || true
}

repo="$PWD"
parent="$(dirname "$repo")"
cache="${CI_CACHE_DIR:-$HOME/.cache/devsecops-ci}"
# Names of their own, to remove them by (both end in the client's PID); the label names the client
# that started the run.
prepare_container="devsecops-ci-prepare-$key-$$"
container="devsecops-ci-$(date +%s)-$$"
cmd=(docker run --rm --init --name "$container" --label "devsecops-ci.client-pid=$$" --network host
  -v /var/run/docker.sock:/var/run/docker.sock
  -v "$parent:$parent" -v /tmp:/tmp
  -v "$cache/cargo:/root/.cargo" -v "$cache/rustup:/root/.rustup"
  -v "$cache/tools:/root/.cache/devsecops-platform")
# The SonarScanner that Jenkins' tool installer placed outside the workspace.
if [ -n "${SONAR_SCANNER_HOME:-}" ]; then cmd+=(-v "$SONAR_SCANNER_HOME:$SONAR_SCANNER_HOME:ro"); fi
cmd+=(-w "$repo")
# -e NAME passes the caller's value, if any, without putting it on a command line.
for name in $PASSED_ENV; do cmd+=(-e "$name"); done
# CI_HOST_CACHE_DIR: where the caches are on the host, for a command that starts containers itself.
cmd+=(-e RUST_TOOLCHAIN="$RUST_TOOLCHAIN" -e CI_HOST_UID="$(id -u)" -e CI_HOST_GID="$(id -g)"
  -e CI_HOST_CACHE_DIR="$cache"
  "$image" scripts/ci-debian.sh --inside "$@")

if [ "$dry_run" = 1 ]; then
  printf '%q ' "${cmd[@]}"
  printf '\n'
  exit 0
fi
# shellcheck disable=SC2317 # called by the traps
remove_containers() { docker rm -f "$prepare_container" "$container" >/dev/null 2>&1 || true; }
# shellcheck disable=SC2317 # called by the traps
stop() {
  trap - EXIT
  echo "ci-debian: $1, removing container $container" >&2
  remove_containers
  exit "$2"
}
trap remove_containers EXIT
trap 'stop SIGTERM 143' TERM
trap 'stop SIGINT 130' INT
trap 'stop SIGHUP 129' HUP

mkdir -p "$cache/cargo" "$cache/rustup" "$cache/tools"
prepare_image
status=0
interruptible "${cmd[@]}" || status=$?
exit "$status"
