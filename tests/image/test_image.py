"""The devsecops-app image in the real Docker engine: it answers /health and /ready, runs as uid 10001
with no capabilities on a read-only root filesystem, drains in-flight requests on SIGTERM as PID 1,
writes JSON log lines, and stays small. Needs the image (scripts/build-image.sh, run by
scripts/test.sh) as DEVSECOPS_IMAGE. Traffic goes to a loopback-published port only."""

import json
import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

IMAGE = os.environ.get("DEVSECOPS_IMAGE", "devsecops-app:dev")
TOKEN = secrets.token_hex(24)


def docker(*args, check=True):
    out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {out.stderr}")
    return out


def http(port, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def container():
    name = f"devsecops-test-{secrets.token_hex(4)}"
    docker("run", "-d", "--name", name, "--read-only", "-p", "127.0.0.1::8080",
           "-e", f"API_TOKEN={TOKEN}", "-e", "APP_ENV=production", "-e", "SHUTDOWN_TIMEOUT_SECS=10", IMAGE)
    try:
        port = int(docker("port", name, "8080/tcp").stdout.strip().splitlines()[0].rsplit(":", 1)[1])
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if http(port, "GET", "/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError(docker("logs", name, check=False).stdout)
        yield name, port
    finally:
        docker("rm", "-f", "-v", name, check=False)


def test_serves_on_a_read_only_root_as_uid_10001_without_capabilities(container):
    name, port = container
    assert http(port, "GET", "/health")[0] == 200
    assert http(port, "GET", "/ready")[0] == 200
    status, body = http(port, "POST", "/api/users", {"name": "Ada", "email": "ada@example.com"})
    assert status == 201, body
    inspect = json.loads(docker("inspect", name).stdout)[0]
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True
    assert inspect["Config"]["User"] == "10001:10001"
    pid = inspect["State"]["Pid"]
    with open(f"/proc/{pid}/status") as f:
        status_lines = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    assert status_lines["Uid"].split()[:2] == ["10001", "10001"]
    assert int(status_lines["CapEff"].strip(), 16) == 0 and int(status_lines["CapPrm"].strip(), 16) == 0
    assert status_lines["NoNewPrivs"].strip() in ("0", "1")
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] == b"/usr/local/bin/devsecops-app", "the service is PID 1"


def test_logs_on_stdout_are_json_lines(container):
    name, port = container
    http(port, "GET", "/health")
    lines = [l for l in docker("logs", name).stdout.splitlines() if l.strip()]
    assert lines
    for line in lines:
        record = json.loads(line)
        assert record["service"] == "devsecops-app" and "timestamp" in record and "level" in record
    assert TOKEN not in docker("logs", name).stdout


def test_sigterm_drains_in_flight_requests_and_exits_in_time(container):
    name, port = container
    body = json.dumps({"name": "Slow", "email": "slow@example.com"}).encode()
    conn = socket.create_connection(("127.0.0.1", port), timeout=15)
    head = (f"POST /api/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    conn.sendall(head + body[:10])
    time.sleep(0.3)
    started = time.time()
    stop = subprocess.Popen(["docker", "stop", "-t", "15", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    conn.sendall(body[10:])
    response = b""
    while chunk := conn.recv(65536):
        response += chunk
    assert response.startswith(b"HTTP/1.1 201"), response[:200]
    stop.wait(timeout=30)
    elapsed = time.time() - started
    state = json.loads(docker("inspect", name).stdout)[0]["State"]
    assert state["ExitCode"] == 0, state
    assert elapsed < 12, f"stopped after {elapsed:.1f} s: not killed at the 15 s bound"
    logs = docker("logs", name).stdout
    assert "shutdown started" in logs and '"stopped"' in logs


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
