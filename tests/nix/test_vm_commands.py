"""Every shell command of the VM tests, as the NixOS test driver runs it (`set -euo pipefail;` in
front): clean under shellcheck and free of pipelines whose outcome pipefail decides behind the
test's back (tests/nix/vm_commands.py). The negative tests show each rule failing."""

import json
import os
import subprocess
import textwrap

import pytest

import vm_commands

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def vm_test_script(test):
    out = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", "--expr",
                          f"(import {ROOT}/tests/nix/vm-tests.nix {{ }}).{test}.testScript"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("test", ["service", "appliance"])
def test_every_vm_test_command_passes_shellcheck_and_the_pipeline_rules(test):
    cmds, findings = vm_commands.check(vm_test_script(test))
    assert len(cmds) >= 10, cmds
    assert [str(f) for f in findings] == []


def test_the_commands_are_read_with_the_scripts_constants_filled_in():
    cmds = vm_commands.commands(vm_test_script("appliance"))
    probe = [c for c in cmds if "psa-probe" in c.text]
    assert [c.method for c in probe] == ["fail"]
    assert probe[0].text.startswith("k3s kubectl -n devsecops run psa-probe --image=127.0.0.1:5000/devsecops-app:")
    assert probe[0].run_as.startswith("set -euo pipefail; k3s kubectl")


def findings_of(script):
    _, findings = vm_commands.check(textwrap.dedent(script))
    return {(f.command.method, f.rule) for f in findings}


# Negative tests: each rule fails on the fault it exists for.

def test_the_pod_security_probe_as_it_was_is_caught():
    found = findings_of("""
        kubectl = "k3s kubectl -n devsecops"
        appliance.succeed(
            f"{kubectl} run psa-probe --image=x:1 --restart=Never --privileged 2>&1 | grep -q 'violates PodSecurity \\"restricted'"
        )
    """)
    assert ("succeed", "stderr-into-pipe") in found
    assert ("succeed", "early-exit-reader") in found


def test_stderr_joined_with_the_pipe_operator_is_caught():
    assert ("wait_until_succeeds", "stderr-into-pipe") in findings_of("m.wait_until_succeeds('kubectl apply -f x |& tee log')")


def test_an_early_exiting_reader_is_caught_in_every_form():
    for reader in ("grep -q x", "grep -qE 'a|b'", "grep --quiet x", "grep -m1 x", "grep --max-count=1 x", "head -n 1"):
        assert ("succeed", "early-exit-reader") in findings_of(f"m.succeed({'journalctl -u a | ' + reader!r})"), reader
    # Readers that consume everything pass.
    assert findings_of("m.succeed('journalctl -u a | grep -x ready')") == set()


def test_a_pipeline_under_fail_is_caught():
    assert ("fail", "pipeline-under-fail") in findings_of("m.fail('journalctl -u a --no-pager | grep Killing')")
    assert ("wait_until_fails", "pipeline-under-fail") in findings_of("m.wait_until_fails('curl -s x | jq -e .up')")


def test_shellcheck_findings_are_reported():
    assert ("wait_until_succeeds", "SC2046") in findings_of(
        "m.wait_until_succeeds(f\"test $(kubectl get pods -o name) -ge 1\", timeout=10)")
    # A failing $(...) is masked: under fail the check would pass for the wrong reason.
    assert ("fail", "SC2312") in findings_of("pid = m.succeed('pidof a')\nm.fail(f'test $(stat -c %u /proc/{pid}) -eq 0')")


def test_a_command_the_check_cannot_read_is_an_error():
    with pytest.raises(vm_commands.ExtractionError):
        vm_commands.commands("m.succeed(command_built_elsewhere)")
    with pytest.raises(vm_commands.ExtractionError):
        vm_commands.commands("m.succeed(*commands)")
    # A value known only at run time stands in as a word; the rest of the command is checked.
    _, kill = vm_commands.commands("pid = m.succeed('pidof a')\nm.succeed(f'kill -TERM {pid}')")
    assert kill.text == f"kill -TERM {vm_commands.RUNTIME_VALUE}"


def test_a_command_shfmt_cannot_parse_is_an_error():
    with pytest.raises(vm_commands.ExtractionError):
        vm_commands.check("m.succeed('echo \"unterminated')")


def test_the_appliance_audits_its_system_closure_and_the_image_binary():
    cmds = vm_commands.commands(vm_test_script("appliance"))
    audits = [c for c in cmds if "devsecops audit" in c.text]
    assert [c.method for c in audits] == ["succeed", "succeed"]
    assert "devsecops audit --nix /run/current-system --db advisory-db --output closure-audit.json" in audits[0].text
    assert "devsecops audit --db advisory-db /nix/store/00000000000000000000000000000000-devsecops-app-static/bin/devsecops-app" in audits[1].text
    assert audits[1].text.rstrip().endswith("devsecops gate"), "the gate decides over the audits' findings"
