"""Alertmanager: the config is valid, every severity reaches the intended receiver (amtool), and the
inhibit rules mute exactly what they explain (the real Alertmanager)."""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import OBS

CONFIG = os.path.join(OBS, "alertmanager", "alertmanager.yml")
CASES = os.path.join(OBS, "alertmanager", "tests", "routes.txt")


def test_amtool_accepts_the_config():
    out = subprocess.run(["amtool", "check-config", CONFIG], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_routes_reach_the_intended_receivers(alerts):
    with open(CASES) as f:
        cases = [line.split() for line in f if line.strip() and not line.startswith("#")]
    assert cases
    for *labels, receiver in cases:
        out = subprocess.run(
            ["amtool", "config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}",
             *labels], capture_output=True, text=True)
        assert out.returncode == 0, f"{labels} -> {out.stdout.strip()} (want {receiver})"
    # Every severity the rules use is routed somewhere other than the default.
    for severity in {a["labels"]["severity"] for a in alerts}:
        out = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={CONFIG}",
                              f"severity={severity}"], capture_output=True, text=True)
        assert out.stdout.strip() != "default", severity


# Inhibition, on the real Alertmanager (Debian's prometheus-alertmanager) with the project's config:
# alerts are posted with amtool, their state is read back from the v2 API, which evaluates the
# inhibit rules for every alert it lists (alertmanager api/v2: setAlertStatus).
INHIBITION_CASES = [
    # (source alert labels, target alert labels, target muted?)
    ({"alertname": "DevsecopsAppAvailabilityBudgetBurnFast", "severity": "critical", "namespace": "prod"},
     {"alertname": "DevsecopsAppAvailabilityBudgetBurnSlow", "severity": "warning", "namespace": "prod"}, True),
    ({"alertname": "DevsecopsAppLatencyBudgetBurnFast", "severity": "critical", "namespace": "prod"},
     {"alertname": "DevsecopsAppAvailabilityBudgetBurnSlow", "severity": "warning", "namespace": "prod"}, False),
    ({"alertname": "DevsecopsAppAvailabilityBudgetBurnFast", "severity": "critical", "namespace": "prod"},
     {"alertname": "DevsecopsAppLatencyBudgetBurnSlow", "severity": "warning", "namespace": "prod"}, False),
    ({"alertname": "DevsecopsAppLatencyBudgetBurnFast", "severity": "critical", "namespace": "prod"},
     {"alertname": "DevsecopsAppLatencyBudgetBurnSlow", "severity": "warning", "namespace": "prod"}, True),
    ({"alertname": "DevsecopsAppAvailabilityBudgetBurnFast", "severity": "critical", "namespace": "dev"},
     {"alertname": "DevsecopsAppAvailabilityBudgetBurnSlow", "severity": "warning", "namespace": "prod"}, False),
    ({"alertname": "DevsecopsAppTargetDown", "severity": "critical", "namespace": "prod", "instance": "10.42.0.7:9464"},
     {"alertname": "DevsecopsAppHighErrorRate", "severity": "critical", "namespace": "prod"}, False),
    ({"alertname": "DevsecopsAppTargetDown", "severity": "critical", "namespace": "prod", "instance": "10.42.0.7:9464"},
     {"alertname": "DevsecopsAppDatabaseNotReady", "severity": "critical", "namespace": "prod",
      "instance": "10.42.0.7:9464"}, True),
    ({"alertname": "DevsecopsAppTargetDown", "severity": "critical", "namespace": "prod", "instance": "10.42.0.7:9464"},
     {"alertname": "DevsecopsAppDatabaseNotReady", "severity": "critical", "namespace": "prod",
      "instance": "10.42.0.8:9464"}, False),
]


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if not binary:
        pytest.fail("Alertmanager is not installed: scripts/test.sh installs prometheus-alertmanager")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path_factory.mktemp("alertmanager")
    process = subprocess.Popen([binary, f"--config.file={CONFIG}", f"--storage.path={data}",
                                f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"Alertmanager did not start: {process.stderr.read().decode()[-2000:]}")
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_inhibitions_mute_only_what_they_explain(alertmanager):
    for i, (source, target, muted) in enumerate(INHIBITION_CASES):
        # Each case in its own job, so that the cases cannot inhibit one another.
        job = f"case-{i}"
        for labels in (source, target):
            argv = [f"{k}={v}" for k, v in {**labels, "job": job}.items()]
            out = subprocess.run(["amtool", f"--alertmanager.url={alertmanager}", "alert", "add", *argv],
                                 capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen(alertmanager + "/api/v2/alerts", timeout=5) as r:
            alerts = json.load(r)
        if len(alerts) == 2 * len(INHIBITION_CASES) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    state = {(a["labels"]["job"], a["labels"]["alertname"], a["labels"].get("instance")): a["status"]
             for a in alerts}
    for i, (source, target, muted) in enumerate(INHIBITION_CASES):
        status = state[(f"case-{i}", target["alertname"], target.get("instance"))]
        assert bool(status["inhibitedBy"]) == muted, f"{source['alertname']} -> {target}: {status}"
        source_status = state[(f"case-{i}", source["alertname"], source.get("instance"))]
        assert not source_status["inhibitedBy"], f"{source} muted by its own case"
