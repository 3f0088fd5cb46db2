"""The pipelines' stage commands where they run: the Debian 12 container scripts/ci-debian.sh
prepares (from a Debian 12 image built here from Debian's mirror by tests/ci/debian-image.sh, as no
image can be pulled), started through the real Docker engine exactly as the Jenkins stages and the
GitHub workflow start it. The agent host needs nothing but Docker and git; everything the scripts
assume (compiler, python3-venv, PostgreSQL, the advisory database beside the workspace, helm) must be
there inside. The Test with coverage stage's own command with the host's port 5432 taken (the
container shares the host's network), scripts/with-tools.sh without apt-get, the container gone
seconds after the client is told to stop (as Jenkins stops an aborted step). And the test command's
PostgreSQL on a distribution whose major version is not 15."""

import contextlib
import errno
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from test_jenkins import Pipeline, load_model, shell_steps

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
echo "clusters=$(pg_lsclusters -h | wc -l)"
ensure_postgres >&2
echo "postgres=$(psql "$TEST_POSTGRES_URL" -Atc 'show server_version_num')"
echo "postgres-port=$(psql "$TEST_POSTGRES_URL" -Atc 'select inet_server_port()') $PG_PORT $(postgres_port "$(postgres_major)")"
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


@contextlib.contextmanager
def host_port_5432_taken():
    """Port 5432 of the host (whose network the container shares) in use for the duration: by the
    host's own PostgreSQL when it runs one, else by a listening socket held here."""
    holder = socket.socket()
    try:
        holder.bind(("0.0.0.0", 5432))
        holder.listen()
    except OSError as error:
        holder.close()
        holder = None
        assert error.errno == errno.EADDRINUSE, error
    try:
        yield
    finally:
        if holder:
            holder.close()


def test_the_stage_commands_find_what_they_assume_in_the_debian_12_container(bookworm, tmp_path):
    env = dict(os.environ, CI_DEBIAN_IMAGE=bookworm, CI_CACHE_DIR=str(ci_cache(tmp_path)), DIGEST=DIGEST)
    for name in ("TEST_POSTGRES_URL", "PG_PORT"):
        env.pop(name, None)
    script = f"export DIGEST={DIGEST}\n" + STAGE_PREFLIGHT
    with host_port_5432_taken():
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
    assert facts["clusters"] == "0", "the prepared image holds no cluster made on whatever port was free then"
    assert facts["postgres"].startswith("15"), "Debian 12's PostgreSQL"
    served, exported, listed = facts["postgres-port"].split()
    assert served == exported == listed != "5432", "the container's own cluster, on a port free on the host"
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


# --- the stage commands themselves --------------------------------------------------------------------

def stage_command(stage_name):
    """The one sh command of a Jenkinsfile stage, as Jenkins runs it."""
    stage = Pipeline(load_model()).stage(stage_name)
    (command,) = [c for c, _ in shell_steps(stage.steps)]
    return command


def workspace_copy(tmp_path, source=ROOT):
    """A Jenkins workspace holding what the commands below read: scripts/ and nextest's configuration."""
    ws = tmp_path / "workspace" / "devsecops-app_main"
    shutil.copytree(source / "scripts", ws / "scripts")
    shutil.copytree(source / ".config", ws / ".config")
    return ws


# cargo, rustup and the two cargo tools scripts/coverage.sh uses, standing in for the toolchain (whose
# instrumented build would take minutes): `cargo llvm-cov nextest` does with PostgreSQL what the tests
# do, on the URL scripts/coverage.sh gives them, and reports what it found.
FAKE_TOOLS = {
    "rustup": """#!/bin/sh
[ "$1 $2 $3" = "component list --installed" ] && echo llvm-tools-x86_64-unknown-linux-gnu
exit 0
""",
    "cargo": """#!/bin/bash
set -euo pipefail
case "$1 $2" in
  "llvm-cov nextest")
    echo "probe url=$TEST_POSTGRES_URL"
    echo "probe served-port=$(psql "$TEST_POSTGRES_URL" -Atc 'select inet_server_port()')"
    echo "probe listed-port=$(pg_lsclusters -h | awk '$2 == "main" {print $3}')"
    psql "$TEST_POSTGRES_URL" -v ON_ERROR_STOP=1 -qc 'create database test_stage_probe'
    echo "probe created=$(psql "$TEST_POSTGRES_URL" -Atc "select count(*) from pg_database where datname = 'test_stage_probe'")"
    mkdir -p target/nextest/coverage
    echo '<testsuites/>' > target/nextest/coverage/junit.xml ;;
  "llvm-cov report")
    for arg in "$@"; do if [ "${prev:-}" = --output-path ]; then echo "TN:" > "$arg"; fi; prev="$arg"; done ;;
esac
""",
    "cargo-llvm-cov": "#!/bin/sh\nexit 0\n",
    "cargo-nextest": "#!/bin/sh\nexit 0\n",
}


def fake_toolchain_cache(tmp_path):
    cache = tmp_path / "fake-cache"
    for name, text in FAKE_TOOLS.items():
        tool = cache / "cargo" / "bin" / name
        tool.parent.mkdir(parents=True, exist_ok=True)
        tool.write_text(text)
        tool.chmod(0o755)
    (cache / "rustup").mkdir()
    (cache / "tools").mkdir()
    return cache


def run_coverage_stage(image, tmp_path, source=ROOT):
    ws = workspace_copy(tmp_path, source)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CI_DEBIAN_IMAGE": image,
           "CI_CACHE_DIR": str(fake_toolchain_cache(tmp_path))}
    with host_port_5432_taken():
        return subprocess.run(["bash", "-c", stage_command("Test with coverage")], cwd=ws, env=env,
                              capture_output=True, text=True, timeout=600), ws


def test_the_coverage_stage_runs_its_own_postgresql_beside_the_hosts(bookworm, tmp_path):
    """The container shares the host's network, where 5432 is taken: the stage's PostgreSQL gets a
    free port and the tests get that port (not the host's server, not a cluster baked into the image)."""
    out, ws = run_coverage_stage(bookworm, tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    probe = dict(line.split(" ", 1)[1].split("=", 1) for line in out.stdout.splitlines() if line.startswith("probe "))
    assert probe["served-port"] == probe["listed-port"] != "5432", probe
    assert probe["url"].endswith(f"@127.0.0.1:{probe['served-port']}/postgres"), probe
    assert probe["created"] == "1", "the test role creates a database per test"
    assert (ws / "reports" / "coverage" / "junit.xml").is_file() and (ws / "reports" / "coverage" / "lcov.info").is_file()


def containers_of(client_pid):
    """The containers a client started: the run's (labelled with its PID) and the image preparation's
    (named devsecops-ci-prepare-<key>-<PID>)."""
    found = set()
    for selector in (f"label=devsecops-ci.client-pid={client_pid}", f"name=^devsecops-ci-prepare-.*-{client_pid}$"):
        out = subprocess.run(["docker", "ps", "-a", "-q", "--filter", selector], capture_output=True, text=True,
                             timeout=30, check=True)
        found |= set(out.stdout.split())
    return found


@pytest.mark.parametrize("whom", ["client", "process-tree"])
@pytest.mark.parametrize("phase", ["run", "prepare"])
def test_stopping_the_client_stops_the_container(bookworm, image_builds, tmp_path, phase, whom):
    """Jenkins ends an aborted or timed-out sh step with SIGTERM to every process of the step (the
    ProcessTree kill; SIGKILL follows after a few seconds): no container may outlive it, or a deploy
    keeps running while the rollback after it starts, or apt-get keeps installing into an image
    nobody will use. The command ignores SIGTERM, as one busy finishing its work does. In the
    prepare phase the base image is one no image was prepared from (Debian 13), and the run is
    stopped while its packages install: nothing of it may remain, no image either."""
    ws = workspace_copy(tmp_path)
    image_builds["trixie-postgresql"].result()
    base = bookworm if phase == "run" else debian_image("trixie")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CI_DEBIAN_IMAGE": base,
           "CI_CACHE_DIR": str(fake_toolchain_cache(tmp_path))}
    command = [ws / "scripts" / "ci-debian.sh", "bash", "-c", "trap '' TERM; sleep 300"]
    dry = subprocess.run([command[0], "--dry-run", *command[1:]], cwd=ws, env=env, capture_output=True, text=True,
                         timeout=60)
    (prepared,) = [word for word in shlex.split(dry.stdout) if word.startswith("devsecops-ci:")]
    if phase == "prepare":
        subprocess.run(["docker", "rmi", prepared], capture_output=True, timeout=120)
    log = tmp_path / "client.log"
    with log.open("w") as stderr:
        client = subprocess.Popen(command, cwd=ws, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not containers_of(client.pid):
            assert client.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the container did not start"
            time.sleep(0.5)
        time.sleep(3)
        assert ("preparing devsecops-ci:" in log.read_text()) == (phase == "prepare"), log.read_text()
        stopped = time.monotonic()
        if whom == "client":
            client.send_signal(signal.SIGTERM)
        else:
            os.killpg(client.pid, signal.SIGTERM)
        while containers_of(client.pid):
            assert time.monotonic() - stopped < 5, f"a container outlives its client: {log.read_text()}"
            time.sleep(0.25)
        assert client.wait(timeout=10) == 143
        if phase == "prepare":
            inspect = subprocess.run(["docker", "image", "inspect", prepared], capture_output=True, timeout=60)
            assert inspect.returncode != 0, "an interrupted preparation left an image"
    finally:
        if client.poll() is None:
            client.kill()
        for container in containers_of(client.pid):
            subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)


def real_tools_cache(tmp_path):
    """The caches the scan stages use, holding every tool install_tools installs (a CI cache's state
    after a first build): the host's own caches inside scripts/ci-debian.sh's container; here, this
    machine's cargo tools (hard links, one directory), rustup and virtualenvs."""
    if os.environ.get("CI_HOST_CACHE_DIR"):
        return Path(os.environ["CI_HOST_CACHE_DIR"])
    cache = tmp_path / "tools-cache"
    bin_dir = cache / "cargo" / "bin"
    bin_dir.parent.mkdir(parents=True)

    def link(source, target):
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)

    shutil.copytree(Path.home() / ".cargo" / "bin", bin_dir, symlinks=True, copy_function=link)
    lib = (ROOT / "scripts" / "lib.sh").read_text()
    for tool in re.findall(r"^\s*cargo_tool (\S+) ", lib, re.M):
        found = shutil.which(tool)
        assert found, f"{tool} missing: the test command installs it first"
        if not (bin_dir / tool).exists():
            link(found, bin_dir / tool)
    (cache / "rustup").symlink_to(Path.home() / ".rustup")
    (cache / "tools").symlink_to(TOOLS_CACHE)
    return cache


def test_the_scan_stages_find_every_tool_in_the_prepared_image(bookworm, tmp_path):
    """scripts/with-tools.sh in the container installs nothing: the Debian packages are in the image,
    the rest in the caches."""
    env = dict(os.environ, CI_DEBIAN_IMAGE=bookworm, CI_CACHE_DIR=str(real_tools_cache(tmp_path)))
    tools = ["chromium", "prometheus", "groovy", "shellcheck", "nix-store", "trivy", "checkov", "helm",
             "cargo-deny", "cargo-audit"]
    check = "for tool in " + " ".join(tools) + "; do command -v \"$tool\" >/dev/null && echo \"found $tool\"; done"
    started = time.monotonic()
    out = subprocess.run([ROOT / "scripts" / "ci-debian.sh", "scripts/with-tools.sh", "bash", "-c", check], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert "apt-get" not in out.stderr and "cargo install" not in out.stderr, out.stderr[-3000:]
    assert sorted(line.split()[1] for line in out.stdout.splitlines() if line.startswith("found ")) == sorted(tools)
    assert time.monotonic() - started < 120, "with-tools.sh is quick once the image and caches are there"


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
