"""Shared fixtures of the Nix checks."""

import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Module evaluation with nixpkgs' lib: only where a copy is at hand (never vendored; the project's
# Nix users have it through the flake). scripts/check-nix.sh finds or prepares one.
NIXPKGS_LIB = os.environ.get("NIXPKGS_LIB", "")


def evaluate_with_nixpkgs_lib(file):
    """nix-instantiate --eval of one of tests/nix's files that take nixpkgs' lib as an argument."""
    if not NIXPKGS_LIB:
        pytest.skip("NIXPKGS_LIB is not set: no copy of nixpkgs' lib to evaluate with")
    out = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", "--show-trace",
                          "--argstr", "nixpkgsLib", NIXPKGS_LIB, os.path.join(ROOT, "tests", "nix", file)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout)


@pytest.fixture(scope="session")
def modules():
    """tests/nix/eval-modules.nix: the modules, the VM tests' machines and their unit files."""
    return evaluate_with_nixpkgs_lib("eval-modules.nix")


@pytest.fixture(scope="session")
def flake():
    """tests/nix/eval-flake.nix: the flake's outputs, each derivation with its builder's arguments."""
    return evaluate_with_nixpkgs_lib("eval-flake.nix")
