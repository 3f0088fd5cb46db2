"""The unit files the modules make, checked with this machine's systemd (Debian 12: systemd 252).

The unit text comes from tests/nix/eval-modules.nix, written the way NixOS writes it
(tests/nix/systemd-services.nix). Placeholder store paths are moved under a temporary directory
where stand-in executables exist, because `systemd-analyze verify` refuses a unit whose command is
missing. Units that nixpkgs' own modules define, which ours depend on, get stand-ins too, but only
those named in NIXPKGS_UNITS: a dependency on any other unit this host lacks is an error.
"""

import json
import os
import re
import subprocess

STORE = "/nix/store/"

# Units of nixpkgs' modules that the project's units order themselves after or require.
NIXPKGS_UNITS = {
    "k3s.service": "nixos/modules/services/cluster/rancher",
    "grafana.service": "nixos/modules/services/monitoring/grafana.nix",
    "postgresql.target": "nixos/modules/services/databases/postgresql.nix",
    "postgresql-setup.service": "nixos/modules/services/databases/postgresql.nix",
}

# `systemd-analyze security` rates exposure from 0.0 to 10.0; --threshold takes tenths. The
# service's VM test holds the running unit to the same bound (vm-tests/service.nix: below 2.0).
MAX_EXPOSURE_TENTHS = 19


def install(directory, name, text, kind="service"):
    """Writes `name`.`kind` (a service or a timer) into `directory` with its store paths under
    directory/store; returns the unit's path."""
    store = os.path.join(directory, "store") + "/"
    text = text.replace(STORE, store)
    for command in re.findall(r"^Exec\w*=[-@:+!|]*(\S+)", text, re.M):
        if command.startswith(store):
            os.makedirs(os.path.dirname(command), exist_ok=True)
            with open(command, "w") as f:
                f.write("#!/bin/sh\n")
            os.chmod(command, 0o755)
    standins = os.path.join(directory, "nixpkgs-units")
    os.makedirs(standins, exist_ok=True)
    for unit in NIXPKGS_UNITS:
        with open(os.path.join(standins, unit), "w") as f:
            f.write("[Service]\nExecStart=/bin/true\n" if unit.endswith(".service") else "[Unit]\n")
    path = os.path.join(directory, f"{name}.{kind}")
    with open(path, "w") as f:
        f.write(text)
    return path


def _analyze(unit, *args):
    env = dict(os.environ, SYSTEMD_UNIT_PATH=os.path.join(os.path.dirname(unit), "nixpkgs-units") + ":")
    return subprocess.run(["systemd-analyze", *args, unit], capture_output=True, text=True, env=env)


def verify(unit):
    """systemd's own load of the unit: every diagnostic, the ignored lines included ("Failed to
    resolve specifiers ..., ignoring" leaves the exit code at 0, so any output is a finding)."""
    out = _analyze(unit, "verify", "--man=no", "--generators=no")
    findings = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    if out.returncode != 0 and not findings:
        findings = [f"systemd-analyze verify exited with {out.returncode}"]
    return findings


def exposure(unit):
    """(exposure as printed, whether it is within MAX_EXPOSURE_TENTHS) from the offline review."""
    out = _analyze(unit, "security", "--offline=yes", f"--threshold={MAX_EXPOSURE_TENTHS}", "--no-pager")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", out.stdout)
    if match is None:
        raise AssertionError(f"no exposure rating from systemd-analyze security: {out.stdout[-2000:]}{out.stderr}")
    return float(match.group(1)), out.returncode == 0


SPECIFIER = re.compile(r"%(.|$)", re.S)


def literal_values(text, setting, credentials="${CREDENTIALS_DIRECTORY}"):
    """What the service receives for each `setting=` line whose value is NAME=value (Environment)
    or ID:path (LoadCredential): the quoted word unquoted and C-unescaped (NixOS writes it with
    builtins.toJSON, whose escapes are a subset of C's), then "%%" resolved to "%" and "%d" to the
    credentials directory, as systemd.unit(5) specifies. Any other specifier is an error: this
    module's values are never meant to hold one."""
    values = {}
    for raw in re.findall(rf"^{setting}=(.*)$", text, re.M):
        word = json.loads(raw) if raw.startswith('"') else raw

        def resolve(match):
            if match.group(1) == "%":
                return "%"
            if match.group(1) == "d":
                return credentials
            raise ValueError(f"{setting}={raw}: systemd resolves the specifier %{match.group(1)}")

        word = SPECIFIER.sub(resolve, word)
        separator = "=" if setting == "Environment" else ":"
        name, _, value = word.partition(separator)
        values[name] = value
    return values


def calendar(expression):
    """systemd's own parse of an OnCalendar= expression: (ok, output)."""
    out = subprocess.run(["systemd-analyze", "calendar", expression], capture_output=True, text=True)
    return out.returncode == 0, out.stdout + out.stderr
