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


def test_every_program_a_vm_test_runs_is_on_its_machine(modules):
    """Each command's programs against what its machine installs, from the evaluated nodes."""
    for test in ("service", "appliance"):
        programs = vm_commands.machine_programs(modules["vmTestPrograms"][test])
        cmds, findings = vm_commands.check(vm_test_script(test), programs)
        assert [str(f) for f in findings] == [], test
        assert {c.machine for c in cmds} <= set(programs) | {"machine"}, test


# The values known only at run time, per script: a command cannot hide behind a new one unseen.
RUNTIME_VALUES = {
    "service": {"body", "later", "machine.name", "main_pid(postgres)", "newest", "pid", "token"},
    "appliance": {"container", "pid", "uuid.uuid4().hex"},
}


@pytest.mark.parametrize("test", ["service", "appliance"])
def test_only_the_known_run_time_values_stand_in_for_words(test):
    cmds = vm_commands.commands(vm_test_script(test))
    assert {value for c in cmds for value in c.runtime} == RUNTIME_VALUES[test]


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


def test_strings_built_anywhere_in_the_script_are_read_into_the_command():
    cmds = vm_commands.commands(textwrap.dedent("""
        host = "example.internal"
        with subtest("x"):
            via = f"-H 'Host: {host}' http://appliance"
            client.succeed(f"curl -fsS {via}/health")
        for path in ("/metrics", "/debug/memory"):
            client.succeed(f"curl -s http://{host}{path}")
    """))
    assert [c.text for c in cmds] == [
        "curl -fsS -H 'Host: example.internal' http://appliance/health",
        "curl -s http://example.internal/metrics",
        "curl -s http://example.internal/debug/memory",
    ]
    assert all(c.machine == "client" and c.runtime == () for c in cmds)
    # What a variable held used to pass as a run-time word; now its pipeline is judged.
    found = findings_of("""
        reader = "grep -q ready"
        m.succeed(f"journalctl -u a | {reader}")
    """)
    assert ("succeed", "early-exit-reader") in found


def test_a_command_that_is_only_a_run_time_value_or_a_method_passed_around_is_an_error():
    with pytest.raises(vm_commands.ExtractionError, match="known only at run time"):
        vm_commands.commands("cmd = m.succeed('cat /etc/cmd')\nm.succeed(f'{cmd}')")
    with pytest.raises(vm_commands.ExtractionError, match="used without being called"):
        vm_commands.commands("run = m.succeed\nrun('systemctl start a')")


def test_more_early_exiting_readers_and_stderr_in_a_block_are_caught():
    for reader in ("timeout 5 grep -q x", "sed 1q", "sed -n '/x/{p;q}'", "awk '/x/ {print; exit}'"):
        assert ("succeed", "early-exit-reader") in findings_of(f"m.succeed({'journalctl -u a | ' + reader!r})"), reader
    for reader in ("sed -n 1p", "awk '{print $1}'", "sed 's/q/x/'"):
        assert findings_of(f"m.succeed({'journalctl -u a | ' + reader!r})") == set(), reader
    assert ("succeed", "stderr-into-pipe") in findings_of("m.succeed('{ kubectl run x 2>&1; } | grep -x y')")
    # Output of a substitution is not the stage's error output.
    assert ("succeed", "stderr-into-pipe") not in findings_of("m.succeed('echo \"$(kubectl run x 2>&1)\" | grep -x y')")


def test_systemctl_show_must_print_one_scalar_property_bare():
    wrong = [
        "systemctl show -P Environment devsecops-app",          # the old service test: shell-quoted list
        "systemctl show --property=Environment --value devsecops-app",
        "systemctl show -p MainPID devsecops-app",              # MainPID=123
        "systemctl show devsecops-app",                         # every property
        "systemctl show -P MainPID,ExecMainPID devsecops-app",  # two
    ]
    for command in wrong:
        assert ("succeed", "systemctl-show") in findings_of(f"m.succeed({command!r})"), command
    for command in ("systemctl show --property=MainPID --value devsecops-app.service", "systemctl show -P ActiveState a",
                    "systemctl status a"):
        assert findings_of(f"m.succeed({command!r})") == set(), command


def test_a_program_the_machine_does_not_have_is_caught():
    core = vm_commands.machine_programs({"m": {"packages": []}})
    with_jq = vm_commands.machine_programs({"m": {"packages": ["jq"]}})
    check = lambda command, programs: {f.rule for f in vm_commands.check(f"m.succeed({command!r})", programs)[1]}
    assert check("curl -fsS x | jq -e .up", core) == {"unknown-program"}
    assert check("curl -fsS x | jq -e .up", with_jq) == set()
    assert check("sytemctl start a", core) == {"unknown-program"}           # a typo
    assert check("timeout 5 k3s kubectl get pods", core) == {"unknown-program"}
    assert check("timeout 5 k3s kubectl get pods", vm_commands.machine_programs({"m": {"packages": [], "k3s": True}})) == set()
    assert check("/usr/bin/python3 -c 1", core) == {"unknown-program"}     # no FHS paths on NixOS
    assert check("test -s /x && cd /tmp && /nix/store/0-a/bin/a", core) == set()
    # Inside $(...) too, and on the machine the command is sent to.
    assert check('test "$(kubectl get pods -o name)" != ""', core) == {"unknown-program"}
    two = vm_commands.machine_programs({"server": {"packages": ["jq"]}, "client": {"packages": []}})
    assert {f.rule for f in vm_commands.check("client.succeed('jq . f')", two)[1]} == {"unknown-program"}
    assert {f.rule for f in vm_commands.check("server.succeed('jq . f')", two)[1]} == set()
    with pytest.raises(vm_commands.ExtractionError, match="does not know the programs"):
        vm_commands.machine_programs({"m": {"packages": ["firefox"]}})
