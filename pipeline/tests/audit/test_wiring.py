"""The audit as the Nix gate and the appliance VM test run it, on a real closure here: the script of
checks.appliance-closure-audit (nix/checks.nix, read from the flake's evaluation) with the path info
exportReferencesGraph gives it, and the appliance test's audit commands (vm-tests/appliance.nix,
read from its testScript as tests/nix reads it) with the fixture closure standing in for
/run/current-system."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ADVISORY_DB, BIN, ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "nix"))
import vm_commands  # noqa: E402

NIXPKGS_LIB = os.environ.get("NIXPKGS_LIB", os.path.join(os.path.dirname(ROOT), "shared", "nixpkgs-lib"))
PLACEHOLDER = "/nix/store/00000000000000000000000000000000-"


def nix_eval(*args):
    out = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", *args], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def gate_check():
    assert os.path.isdir(os.path.join(NIXPKGS_LIB, "lib")), f"nixpkgs' lib is missing at {NIXPKGS_LIB} (set NIXPKGS_LIB)"
    flake = nix_eval("--argstr", "nixpkgsLib", NIXPKGS_LIB, os.path.join(ROOT, "tests", "nix", "eval-flake.nix"))
    return flake["checks"]["x86_64-linux"]["appliance-closure-audit"]["args"]


def run_gate_check(tmp_path, args, closure_paths):
    """Runs the check's buildCommand as the builder would: structured attributes in .attrs.json,
    devsecops and jq on PATH, the pinned database at its store path's stand-in."""
    build = tmp_path / "build"
    build.mkdir(parents=True)
    infos = subprocess.run(["nix", "--extra-experimental-features", "nix-command", "path-info", "--json", *closure_paths],
                           capture_output=True, text=True, check=True).stdout
    infos = json.loads(infos)
    if isinstance(infos, dict):
        infos = [dict(i, path=p) for p, i in infos.items()]
    # exportReferencesGraph's shape: an array of path info with absolute paths.
    (build / ".attrs.json").write_text(json.dumps({"closure": infos}))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(BIN, bindir / "devsecops")
    script = args["buildCommand"].replace(PLACEHOLDER + "advisory-db", ADVISORY_DB)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", TMPDIR=str(build),
               NIX_ATTRS_JSON_FILE=str(build / ".attrs.json"), gateConfig=args["gateConfig"],
               suppressions=args["suppressions"])
    out = subprocess.run(["bash", "-c", f"set -euo pipefail\ndeclare -A outputs=([out]={tmp_path / 'out'})\n{script}"],
                         cwd=build, env=env, capture_output=True, text=True, timeout=120)
    return out, build / "audit"


def test_the_nix_gate_check_fails_on_a_vulnerable_closure_and_passes_a_patched_one(tmp_path, gate_check, closure):
    root, by_name = closure
    everything = subprocess.run(["nix-store", "--query", "--requisites", root], capture_output=True, text=True,
                                check=True).stdout.split()
    out, work = run_gate_check(tmp_path / "all", gate_check, everything)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "RUSTSEC-2021-0003 smallvec 1.6.0" in out.stderr
    report = json.loads((work / "reports" / "devsecops.json").read_text())
    assert any(f["rule"] == "RUSTSEC-2021-0003" and f["fails"] for f in report["findings"])
    # An acceptance in .devsecops/appliance-suppressions.toml is what the check gates with.
    accepted = tmp_path / "appliance-suppressions.toml"
    accepted.write_text('[[suppression]]\nrule = "RUSTSEC-2021-0003"\njustification = "insert_many is never called by the appliance"\n'
                        'owner = "platform-team"\nexpires = 2099-01-01\nvex_justification = "vulnerable_code_not_in_execute_path"\n')
    out, _ = run_gate_check(tmp_path / "accepted", dict(gate_check, suppressions=str(accepted)), everything)
    assert out.returncode == 0, out.stdout + out.stderr
    patched = [by_name["patched-tool-0.1.0"]["path"], by_name["c-tool-1.0"]["path"]]
    out, _ = run_gate_check(tmp_path / "patched", gate_check, patched)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "patched" / "out" / "reports" / "devsecops-summary.md").exists()


def test_the_appliance_vm_test_commands_audit_a_closure(tmp_path, closure, bins):
    root, _ = closure
    script = nix_eval("--expr", f"(import {ROOT}/tests/nix/vm-tests.nix {{ }}).appliance.testScript")
    commands = [c.text for c in vm_commands.commands(script) if "devsecops audit" in c.text]
    assert len(commands) == 2
    work = tmp_path / "scan"
    work.mkdir()
    os.symlink(ADVISORY_DB, work / "advisory-db")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(BIN, bindir / "devsecops")
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")

    def as_here(command):
        return (command.replace("/tmp/scan", str(work)).replace("/run/current-system", root)
                .replace(PLACEHOLDER + "devsecops-app-static/bin/devsecops-app", os.path.join(bins, "patched-tool")))

    first = subprocess.run(["bash", "-c", "set -euo pipefail; " + as_here(commands[0])], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    audit = json.loads((work / "closure-audit.json").read_text())
    assert audit["errors"] == [] and audit["store_paths"] == 5
    # Then the test's ingest, the image binary's audit and the gate: the fixture's vulnerable binary fails it.
    second = subprocess.run(["bash", "-c", "set -euo pipefail; " + as_here(commands[1])], env=env, capture_output=True, text=True)
    assert second.returncode == 1, second.stdout + second.stderr
    assert "RUSTSEC-2021-0003" in second.stdout
