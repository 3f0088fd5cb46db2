"""The pipelines' stage commands where they run: the Debian 12 container scripts/ci-debian.sh
prepares (from a Debian 12 image built here from Debian's mirror by tests/ci/debian-image.sh, as no
image can be pulled), started through the real Docker engine exactly as the Jenkins stages and the
GitHub workflow start it. The agent host needs nothing but Docker and git; everything the scripts
assume (compiler, python3-venv, PostgreSQL, the advisory database beside the workspace, helm) must be
there inside. And the test command's PostgreSQL on a distribution whose major version is not 15."""

import os
import re
import shutil
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS_CACHE = Path(os.environ.get("DEVSECOPS_TOOLS_CACHE", Path.home() / ".cache" / "devsecops-platform"))
DIGEST = "sha256:" + "0123456789abcdef" * 4


def debian_image(suite):
    assert shutil.which("docker"), "the Docker engine is required"
    out = subprocess.run([ROOT / "tests" / "ci" / "debian-image.sh", suite], capture_output=True, text=True,
                         timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


@pytest.fixture(scope="module")
def image_builds():
    """Both Debian images (and Debian 13's PostgreSQL image) are built side by side from the start:
    a first run spends its time on downloads, which overlap well."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {"bookworm": pool.submit(debian_image, "bookworm"),
               "trixie-postgresql": pool.submit(trixie_postgresql_image)}


@pytest.fixture(scope="module")
def bookworm(image_builds):
    return image_builds["bookworm"].result()


def ci_cache(tmp_path):
    """CI_CACHE_DIR holding this machine's cargo home, rustup and tool virtualenvs, as a CI cache would
    (rustup itself cannot be downloaded here). Inside scripts/ci-debian.sh's own container (GitHub CI)
    those are the host's cache directories, which it names."""
    if os.environ.get("CI_HOST_CACHE_DIR"):
        return Path(os.environ["CI_HOST_CACHE_DIR"])
    cache = tmp_path / "cache"
    cache.mkdir()
    for name, source in (("cargo", Path.home() / ".cargo"), ("rustup", Path.home() / ".rustup"),
                         ("tools", TOOLS_CACHE)):
        assert source.is_dir(), f"{source} missing: the test command installs it first"
        (cache / name).symlink_to(source)
    return cache


STAGE_PREFLIGHT = r"""
set -euo pipefail
trap 'echo "preflight failed at line $LINENO: $BASH_COMMAND" >&2' ERR
echo "os=$(. /etc/os-release; echo "$ID-$VERSION_ID")"
echo "cc=$(cc -dumpversion)"
venv=$(mktemp -d); python3 -m venv "$venv/v" && "$venv/v/bin/python" -c 'print("venv=ok")'; rm -rf "$venv"
echo "docker-engine=$(docker version --format '{{.Server.Version}}')"
echo "cargo=$(cargo --version | cut -d' ' -f2)"
echo "java=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
source scripts/lib.sh
# The host's own cluster has port 5432 (the container shares its network): the cluster the package
# created goes, and ensure_postgres makes one on a free port the test chose.
export PG_PORT="$FREE_PORT"
pg_dropcluster "$(postgres_major)" main
ensure_postgres >&2
echo "postgres=$(psql "$TEST_POSTGRES_URL" -Atc 'show server_version_num')"
as_postgres pg_ctlcluster "$(postgres_major)" main stop
db=$(prepare_advisory_db "$(mktemp -d)")
[ -d "$db/crates" ] && echo "advisory-db=ok"
scripts/deploy.sh development --dry-run --image "localhost:32000/devsecops-app@$DIGEST" > /tmp/deploy-$$.yaml
grep -q "image: localhost:32000/devsecops-app@$DIGEST" /tmp/deploy-$$.yaml && echo "deploy-dry-run=ok"
rm -f /tmp/deploy-$$.yaml
REGISTRY_USERNAME=ci REGISTRY_PASSWORD=x scripts/push-image.sh --dry-run devsecops-app:build-1 \
  localhost:32000/devsecops-app:build-1 | grep -q 'docker login localhost:32000' && echo "push-dry-run=ok"
state=$(mktemp -d); echo 3 > "$state/development.previous-revision"
DEPLOY_STATE_DIR="$state" scripts/rollback.sh development --dry-run | grep -q 'helm rollback devsecops-app 3' \
  && echo "rollback-dry-run=ok"
rm -rf "$state"
"""


def test_the_stage_commands_find_what_they_assume_in_the_debian_12_container(bookworm, tmp_path):
    env = dict(os.environ, CI_DEBIAN_IMAGE=bookworm, CI_CACHE_DIR=str(ci_cache(tmp_path)), DIGEST=DIGEST)
    env.pop("TEST_POSTGRES_URL", None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = f"export DIGEST={DIGEST} FREE_PORT={port}\n" + STAGE_PREFLIGHT
    out = subprocess.run([ROOT / "scripts" / "ci-debian.sh", "bash", "-c", script], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-8000:]
    facts = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    assert facts["os"] == "debian-12"
    assert int(facts["cc"].split(".")[0]) >= 12
    assert facts["venv"] == "ok"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", facts["docker-engine"]), "the host's engine through the socket"
    assert facts["cargo"].startswith(os.environ.get("RUST_TOOLCHAIN", "1.95.0"))
    assert int(facts["java"]) >= 17, "the SonarScanner CLI runs on it"
    assert facts["postgres"].startswith("15"), "Debian 12's PostgreSQL"
    for check in ("advisory-db", "deploy-dry-run", "push-dry-run", "rollback-dry-run"):
        assert facts.get(check) == "ok", check


def test_the_prepared_image_is_reused(bookworm, tmp_path):
    env = dict(os.environ, CI_DEBIAN_IMAGE=bookworm, CI_CACHE_DIR=str(ci_cache(tmp_path)))
    dry = subprocess.run([ROOT / "scripts" / "ci-debian.sh", "--dry-run", "true"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    image = dry.stdout.split()[-4]
    assert image.startswith("devsecops-ci:")
    inspect = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, timeout=60)
    assert inspect.returncode == 0, "the image of the earlier run is the one a dry run names"
    out = subprocess.run([ROOT / "scripts" / "ci-debian.sh", "true"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "preparing" not in out.stderr, out.stderr


def trixie_postgresql_image():
    """Debian 13 with its PostgreSQL installed and the cluster its package created removed, so
    ensure_postgres must find the major version and create the cluster itself."""
    base = debian_image("trixie")
    tag = base + "-postgresql"
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode != 0:
        # A name of this run's own: another run on the machine may be preparing the same image.
        name = f"devsecops-trixie-postgresql-prepare-{os.getpid()}"
        out = subprocess.run(["docker", "run", "--name", name, "-e", "DEBIAN_FRONTEND=noninteractive", base, "sh", "-c",
                              "apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql "
                              "postgresql-client >/dev/null && pg_dropcluster --stop \"$(ls /usr/lib/postgresql)\" main"],
                             capture_output=True, text=True, timeout=1200)
        assert out.returncode == 0, out.stderr[-3000:]
        subprocess.run(["docker", "commit", name, tag], check=True, capture_output=True)
        subprocess.run(["docker", "rm", name], check=True, capture_output=True)
    return tag


@pytest.fixture(scope="module")
def trixie_with_postgresql(image_builds):
    return image_builds["trixie-postgresql"].result()


def test_the_test_command_runs_postgresql_of_the_distributions_major_version(trixie_with_postgresql):
    script = ("set -euo pipefail; source /src/scripts/lib.sh; echo major=$(postgres_major); ensure_postgres >&2; "
              "echo server=$(psql \"$TEST_POSTGRES_URL\" -Atc 'show server_version_num'); "
              "echo role=$(psql \"$TEST_POSTGRES_URL\" -Atc 'select rolcreatedb from pg_roles where rolname = current_user')")
    out = subprocess.run(["docker", "run", "--rm", "-v", f"{ROOT / 'scripts'}:/src/scripts:ro", trixie_with_postgresql,
                          "bash", "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    facts = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    assert facts["major"] == "17", "Debian 13's postgresql package depends on postgresql-17"
    assert facts["server"].startswith("17"), facts
    assert facts["role"] == "t", "the test role may create a database per test"
