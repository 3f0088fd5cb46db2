"""Alertmanager routing: the config is valid and every severity reaches the intended receiver."""

import os
import subprocess

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
