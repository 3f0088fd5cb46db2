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
    assert size_mb < 15, f"{size_mb:.1f} MB"
    labels = inspect["Config"]["Labels"]
    for key in ("source", "version", "revision", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert inspect["Config"].get("Healthcheck") is None, "probes belong to the orchestrator"


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
        assert "healthcheck" in service, f"{name}: no health check"
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
