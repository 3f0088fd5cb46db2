"""deny.toml's `yanked = "deny"`, which `nix flake check` cannot enforce (no crates.io index in its
sandbox): nix/check-yanked.sh, the script behind `nix run .#check-yanked`, on this repository and on
a lockfile that pins a yanked release. Needs crates.io; without it these tests fail, they never
pass quietly."""

import os
import shutil
import subprocess

from conftest import ROOT

SCRIPT = os.path.join(ROOT, "nix", "check-yanked.sh")


def check_yanked(workspace):
    return subprocess.run([SCRIPT, workspace], capture_output=True, text=True, timeout=300)


def test_the_repository_locks_no_yanked_crate():
    out = check_yanked(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "advisories ok" in out.stdout + out.stderr


def test_a_lockfile_pinning_a_yanked_release_is_refused(tmp_path):
    workspace = tmp_path / "yanked"
    shutil.copytree(os.path.join(ROOT, "tests", "nix", "fixtures", "yanked"), workspace)
    out = check_yanked(str(workspace))
    report = out.stdout + out.stderr
    assert out.returncode != 0, report
    assert "detected yanked crate" in report and "log 0.4.10" in report, report
