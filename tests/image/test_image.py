"""The devsecops-app image beyond what image-tests/ (testcontainers, Rust) checks: its size and
labels, the service reached by name on a private Docker network, and compose.yaml. Needs the image
(scripts/build-image.sh, run by scripts/test.sh) as DEVSECOPS_IMAGE."""

import json
import os
import secrets
import subprocess
import time

IMAGE = os.environ.get("DEVSECOPS_IMAGE", "devsecops-app:dev")
TOKEN = secrets.token_hex(24)


def docker(*args, check=True):
    out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {out.stderr}")
    return out


def test_image_is_small_and_labelled():
    inspect = json.loads(docker("image", "inspect", IMAGE).stdout)[0]
    size_mb = inspect["Size"] / 1e6
    print(f"image size: {size_mb:.1f} MB")
    # A static binary stripped of symbols (its embedded dependency list stays): about 16 MB with
    # zxcvbn's dictionaries and the gzip, brotli and zstd encoders; the CA bundle and user files add
    # little.
    assert size_mb < 18, f"{size_mb:.1f} MB"
    labels = inspect["Config"]["Labels"]
    for key in ("source", "version", "revision", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert inspect["Config"].get("Healthcheck") is None, "probes belong to the orchestrator"


LOADTEST_IMAGE = os.environ.get("DEVSECOPS_LOADTEST_IMAGE", "devsecops-loadtest:dev")


def test_load_test_image_is_one_static_binary_run_as_a_user():
    inspect = json.loads(docker("image", "inspect", LOADTEST_IMAGE).stdout)[0]
    size_mb = inspect["Size"] / 1e6
    print(f"load-test image size: {size_mb:.1f} MB")
    # The service is linked in (the load test starts it when given no --host), plus goose and its
    # HTTP client with rustls: about 25 MB.
    assert size_mb < 30, f"{size_mb:.1f} MB"
    config = inspect["Config"]
    assert config["User"] == "10001:10001" and config["Entrypoint"] == ["/usr/local/bin/loadtest"]
    assert config["Labels"].get("org.opencontainers.image.title") == "devsecops-loadtest"
    # Nothing but the binary and its files: no shell to exec into.
    shell = docker("run", "--rm", "--entrypoint", "/bin/sh", LOADTEST_IMAGE, "-c", "true", check=False)
    assert shell.returncode != 0
    # A read-only root file system (as the chart runs it) with reports on a volume.
    version = docker("run", "--rm", "--read-only", LOADTEST_IMAGE, "--version")
    assert version.stdout.startswith("loadtest "), version.stdout


def test_load_test_image_loads_the_service_by_name_and_writes_its_reports():
    """The load-test image against the service's image on a private network, as the chart's Job runs
    it: the token from a file, reports on a writable volume, a read-only root; its thresholds pass."""
    suffix = secrets.token_hex(4)
    network, name = f"devsecops-lt-{suffix}", f"app-{suffix}"
    reports = f"devsecops-lt-reports-{suffix}"
    docker("network", "create", "--internal", network)
    try:
        docker("run", "-d", "--name", name, "--network", network, "--read-only", "-e", f"API_TOKEN={TOKEN}", IMAGE)
        deadline = time.time() + 20
        while docker("run", "--rm", "--network", network, IMAGE, "healthcheck", f"http://{name}:8080/ready",
                     check=False).returncode != 0:
            assert time.time() < deadline, "the service did not become ready"
            time.sleep(0.5)
        docker("volume", "create", reports)
        run = docker("run", "--rm", "--network", network, "--read-only", "-v", f"{reports}:/reports",
                     "-e", f"LOADTEST_TOKEN={TOKEN}", LOADTEST_IMAGE, "--host", f"http://{name}:8080",
                     "--users", "5", "--ramp-up", "1s", "--duration", "3s", "--think-time", "200ms..400ms",
                     # No latency rule: each user's first request resolves the name through
                     # Docker's embedded DNS, whose forwarding of the AAAA query from an internal
                     # network can take over a second, and 5 users make a sixth of a short run.
                     # Errors still fail it (at most 1 %, the default).
                     "--p95", "off", "--reports", "/reports", check=False)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "loadtest: passed" in run.stdout + run.stderr
        # The images hold no shell to list the volume with: its files are read from the host.
        mountpoint = json.loads(docker("volume", "inspect", reports).stdout)[0]["Mountpoint"]
        written = json.load(open(os.path.join(mountpoint, "summary.json")))
        assert written["passed"] is True and written["requests"] > 0 and written["failed"] == 0, written
        assert written["by_scenario"] and all(s["users"] > 0 for s in written["by_scenario"]), written
    finally:
        docker("rm", "-f", "-v", name, check=False)
        docker("volume", "rm", "-f", reports, check=False)
        docker("network", "rm", network, check=False)


def test_service_answers_by_name_on_a_private_network():
    """The part of compose.yaml that needs no pulled image: the service on an internal network,
    reached by another container by its name (Docker's DNS), end to end through /ready."""
    suffix = secrets.token_hex(4)
    network, name = f"devsecops-smoke-{suffix}", f"app-{suffix}"
    docker("network", "create", "--internal", network)
    try:
        docker("run", "-d", "--name", name, "--network", network, "--read-only", "-e", f"API_TOKEN={TOKEN}", IMAGE)
        deadline = time.time() + 20
        while True:
            probe = docker("run", "--rm", "--network", network, IMAGE, "healthcheck", f"http://{name}:8080/ready",
                           check=False)
            if probe.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.5)
        assert probe.returncode == 0 and probe.stdout.startswith("HTTP/1.1 200"), probe.stdout + probe.stderr
        outside = docker("run", "--rm", "--network", network, IMAGE, "healthcheck", "http://example.invalid/", check=False)
        assert outside.returncode != 0, "the internal network reaches nothing outside"
    finally:
        docker("rm", "-f", "-v", name, check=False)
        docker("network", "rm", network, check=False)


def test_compose_file_is_valid_and_keeps_its_promises():
    import yaml
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run(["docker-compose", "--env-file", os.path.join(root, ".env.example"), "-f",
                          os.path.join(root, "compose.yaml"), "config"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    with open(os.path.join(root, "compose.yaml")) as f:
        raw = yaml.safe_load(f)
    services = raw["services"]
    assert set(services) >= {"app", "db", "prometheus", "alertmanager", "loki", "alloy", "grafana"}
    for name, service in services.items():
        one_shot = service.get("restart") == "no"
        assert "healthcheck" in service or one_shot, f"{name}: no health check"
        image = service["image"]
        assert not image.endswith(":latest") and ":" in image, f"{name}: unpinned image {image}"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} is exposed beyond loopback"
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "TOKEN")):
                assert str(value).startswith("${"), f"{name}: {key} holds a literal secret"
    assert services["app"]["read_only"] is True and services["app"]["cap_drop"] == ["ALL"]
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(("./", "/var/run/docker.sock")) or source in raw["volumes"], volume


# What the images compose.yaml runs contain, read from their Dockerfiles (the tag compose pins):
# the user they run as, the paths that user owns in the image (a new named volume mounted there
# takes that ownership; anywhere else it is root's), and the programs a CMD health check can call.
# grafana/loki cmd/loki/Dockerfile: distroless static:debug with busybox, USER 10001, owns /loki.
# grafana/alloy Dockerfile: Ubuntu with ca-certificates, libsystemd0 and tzdata only (bash, grep,
# head from the base; no wget or curl). prom/prometheus and prom/alertmanager: busybox base, USER
# nobody, /prometheus and /alertmanager owned. grafana/grafana: Alpine, USER 472, owns
# /var/lib/grafana. postgres: runs its entrypoint as root and hands its data directory over itself.
IMAGE_FACTS = {
    "grafana/loki": {"user": 10001, "owns": ["/loki"], "programs": {"wget", "sh", "chown", "/busybox/chown"}},
    "grafana/alloy": {"user": 0, "owns": ["/"], "programs": {"bash", "grep", "head", "sh"}},
    "prom/prometheus": {"user": 65534, "owns": ["/prometheus"], "programs": {"wget", "sh"}},
    "prom/alertmanager": {"user": 65534, "owns": ["/alertmanager"], "programs": {"wget", "sh"}},
    "grafana/grafana": {"user": 472, "owns": ["/var/lib/grafana"], "programs": {"wget", "sh"}},
    "postgres": {"user": 0, "owns": ["/"], "programs": {"pg_isready", "sh"}},
}


def test_compose_services_can_start_with_their_images():
    """Health checks call programs their image has, and a named volume mounted where a non-root
    image's user does not own the path is handed over first by a one-shot step."""
    import yaml
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "compose.yaml")) as f:
        services = yaml.safe_load(f)["services"]
    for name, service in services.items():
        image = service["image"].rsplit(":", 1)[0]
        if image.startswith("${"):
            continue  # the service's own image: tests/render runs it
        facts = IMAGE_FACTS.get(image)
        assert facts, f"{name}: nothing is known here about {image}"
        test = service.get("healthcheck", {}).get("test")
        if test:
            program = test[1].split()[0] if test[0] == "CMD-SHELL" else test[1]
            assert program in facts["programs"], f"{name}: health check runs {program}, which {image} lacks"
        if service.get("entrypoint"):
            assert service["entrypoint"][0] in facts["programs"], f"{name}: {service['entrypoint'][0]} missing"
        user = int(str(service.get("user", facts["user"])).split(":")[0])
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith(("./", "/")) or user == 0:
                continue
            if any(target == p or target.startswith(p.rstrip("/") + "/") for p in facts["owns"]):
                continue
            prepared = [n for n, dep in service.get("depends_on", {}).items()
                        if dep.get("condition") == "service_completed_successfully"
                        and any(v.split(":")[0] == source for v in services[n].get("volumes", []))
                        and str(services[n].get("user")) == "0"
                        and f"{user}:" in " ".join(services[n].get("entrypoint", []))]
            assert prepared, f"{name}: volume {source} at {target} is root's, and {image} runs as {user}"
