"""The modules' systemd units as NixOS would write them, loaded by this machine's systemd:
`systemd-analyze verify` must have nothing to say about any of them, the service's sandbox must rate
below 2.0 in `systemd-analyze security --offline`, and a user's value containing `%` must reach the
service unchanged. The negative tests show each check failing on the fault it exists for.
"""

import re
import subprocess

import pytest

import systemd_units


def unit_files(modules):
    units = modules["units"]
    yield "service", units["service"]
    yield "percent", units["percent"]["files"]
    yield "percent, database URL from a file", units["percentFile"]["files"]
    yield "appliance", units["appliance"]["files"]
    for node, files in units["vmService"].items():
        yield f"vm-tests/service.nix {node}", files


def test_every_unit_the_modules_define_is_rendered(modules):
    names = {group: set(files) for group, files in unit_files(modules)}
    assert names["service"] == {"devsecops-app"}
    # alloy only adds settings to nixpkgs' unit; the others are the project's own.
    assert names["appliance"] == {"devsecops-app-secret", "grafana-secret-key", "prometheus-k3s-credentials"}
    assert names["vm-tests/service.nix postgres"] == {"devsecops-app", "devsecops-test-token"}


def test_systemd_loads_every_unit_without_a_diagnostic(modules, tmp_path):
    findings = {}
    for group, files in unit_files(modules):
        for name, text in files.items():
            directory = tmp_path / re.sub(r"\W+", "-", group)
            directory.mkdir(exist_ok=True)
            found = systemd_units.verify(systemd_units.install(str(directory), name, text))
            if found:
                findings[f"{group}: {name}.service"] = found
    assert findings == {}


def test_the_service_sandbox_rates_below_2_offline(modules, tmp_path):
    for group, files in unit_files(modules):
        if "devsecops-app" in files:
            directory = tmp_path / re.sub(r"\W+", "-", group)
            directory.mkdir()
            rating, within = systemd_units.exposure(systemd_units.install(str(directory), "devsecops-app", files["devsecops-app"]))
            assert within, f"{group}: exposure {rating}"


def test_the_exposure_bound_is_the_vm_tests(modules):
    """One bound for the running unit (VM test) and the rendered one (here)."""
    with open(f"{systemd_units.__file__.rsplit('/tests/', 1)[0]}/vm-tests/service.nix") as f:
        vm_test = f.read()
    assert "assert exposure < 2.0" in vm_test
    assert systemd_units.MAX_EXPOSURE_TENTHS == 19


def test_percent_signs_in_user_values_reach_the_service_literally(modules, tmp_path):
    percent = modules["units"]["percent"]
    text = percent["files"]["devsecops-app"]
    settings = percent["settings"]
    assert systemd_units.verify(systemd_units.install(str(tmp_path), "devsecops-app", text)) == []
    env = systemd_units.literal_values(text, "Environment")
    assert env["DATABASE_URL"] == settings["databaseUrl"]
    assert env["HOST"] == settings["host"]
    assert env["METRICS_HOST"] == settings["metrics"]["host"]
    assert env["CONFIG_FILE"] == settings["extraEnvironment"]["CONFIG_FILE"]
    assert env["TRUSTED_PROXIES"] == ",".join(settings["trustedProxies"])
    # The module's own specifier still names the credentials directory.
    assert env["API_TOKEN_FILE"] == "${CREDENTIALS_DIRECTORY}/api-token"
    assert systemd_units.literal_values(text, "LoadCredential") == {"api-token": settings["apiTokenFile"]}

    from_file = modules["units"]["percentFile"]
    text = from_file["files"]["devsecops-app"]
    assert systemd_units.verify(systemd_units.install(str(tmp_path / "from-file"), "devsecops-app", text)) == []
    env = systemd_units.literal_values(text, "Environment")
    assert env["DATABASE_URL_FILE"] == "${CREDENTIALS_DIRECTORY}/database-url" and "DATABASE_URL" not in env
    assert systemd_units.literal_values(text, "LoadCredential") == {
        "api-token": from_file["settings"]["apiTokenFile"],
        "database-url": from_file["settings"]["databaseUrlFile"],
    }

    appliance = modules["units"]["appliance"]
    credentials = systemd_units.literal_values(appliance["files"]["devsecops-app-secret"], "LoadCredential")
    assert credentials == {"api-token": appliance["apiTokenFile"]}


def shellcheck_scripts(scripts, tmp_path):
    """Each unit's `script` as NixOS runs it: a bash script starting with `set -e`
    (nixos/lib/systemd-lib.nix, makeJobScript)."""
    paths = {}
    for name, text in scripts.items():
        path = tmp_path / f"{name}.sh"
        path.write_text("#!/usr/bin/env bash\nset -e\n\n" + text)
        paths[str(path)] = name
    out = subprocess.run(["shellcheck", "--shell=bash", "--format=gcc", *paths], capture_output=True, text=True)
    return out.returncode, out.stdout + out.stderr


def test_every_unit_script_passes_shellcheck(modules, tmp_path):
    scripts = {f"{group}-{name}": text for group, units in modules["units"]["scripts"].items() for name, text in units.items()}
    assert {"appliance-prometheus-k3s-credentials", "appliance-devsecops-app-secret", "postgres-devsecops-test-token"} <= set(scripts)
    status, report = shellcheck_scripts(scripts, tmp_path)
    assert status == 0, report


# Negative tests: each check fails on the fault it exists for.

def test_the_script_check_reports_a_shellcheck_finding(tmp_path):
    status, report = shellcheck_scripts({"unquoted": "rm -rf $DIRECTORY/cache\n"}, tmp_path)
    assert status != 0 and "SC2086" in report, report


def unescaped(text):
    """The unit as the module wrote it before user values were escaped."""
    return text.replace("%%", "%")


def test_verify_reports_the_lines_systemd_drops_for_unescaped_percent_signs(modules, tmp_path):
    text = unescaped(modules["units"]["percent"]["files"]["devsecops-app"])
    findings = systemd_units.verify(systemd_units.install(str(tmp_path), "devsecops-app", text))
    assert any("Failed to resolve specifiers in DATABASE_URL=" in f for f in findings), findings
    assert any("Failed to resolve specifiers in HOST=" in f for f in findings), findings
    assert any("Failed to resolve specifiers in METRICS_HOST=" in f for f in findings), findings


def test_a_specifier_systemd_resolves_silently_is_caught_by_the_literal_check(modules):
    # %C3%A9 (é) holds %C and %A, which systemd expands without a word (cache directory, OS image
    # version), and %d in a file name becomes the credentials directory: verify cannot see
    # either, the literal comparison must.
    with pytest.raises(ValueError, match="specifier %C"):
        systemd_units.literal_values('Environment="DATABASE_URL=postgres:///caf%C3%A9"\n', "Environment")
    text = unescaped(modules["units"]["percent"]["files"]["devsecops-app"])
    settings = modules["units"]["percent"]["settings"]
    assert systemd_units.literal_values(text, "LoadCredential") != {"api-token": settings["apiTokenFile"]}


def test_verify_reports_a_dependency_on_a_unit_nobody_defines(modules, tmp_path):
    text = modules["units"]["service"]["devsecops-app"].replace("[Unit]\n", "[Unit]\nRequires=postgresql.servce\n")
    findings = systemd_units.verify(systemd_units.install(str(tmp_path), "devsecops-app", text))
    assert any("postgresql.servce" in f for f in findings), findings


def test_the_exposure_check_fails_on_an_unsandboxed_unit(modules, tmp_path):
    text = modules["units"]["service"]["devsecops-app"]
    bare = "\n".join(line for line in text.splitlines()
                     if not line.startswith(("Protect", "Private", "Restrict", "SystemCall", "Capability",
                                             "NoNewPrivileges", "DynamicUser", "MemoryDeny", "LockPersonality")))
    rating, within = systemd_units.exposure(systemd_units.install(str(tmp_path), "devsecops-app", bare))
    assert not within and rating > 1.9, rating


# The backup timer, its service and the restore template (services.devsecops-app.backup).

def install_backup_units(modules, directory):
    """The backup service, the restore template (as an instance, as systemctl starts it) and the
    timer, side by side as NixOS installs them."""
    backup = modules["units"]["backup"]
    directory.mkdir(exist_ok=True)
    paths = {name: systemd_units.install(str(directory), name, text) for name, text in backup["files"].items()}
    instance = directory / "devsecops-app-restore@devsecops-app-20261120T031700.000Z.db.service"
    instance.symlink_to(paths["devsecops-app-restore@"])
    paths["restore instance"] = str(instance)
    for name, text in backup["timers"].items():
        paths[f"{name}.timer"] = systemd_units.install(str(directory), name, text, kind="timer")
    return paths


def test_backup_units_load_without_a_diagnostic_and_are_sandboxed(modules, tmp_path):
    paths = install_backup_units(modules, tmp_path / "backup")
    assert set(paths) == {"devsecops-app", "devsecops-app-backup", "devsecops-app-restore@", "restore instance",
                          "devsecops-app-backup.timer"}
    for name in ("devsecops-app-backup", "restore instance", "devsecops-app-backup.timer"):
        assert systemd_units.verify(paths[name]) == [], name
    for name in ("devsecops-app-backup", "restore instance"):
        rating, within = systemd_units.exposure(paths[name])
        assert within, f"{name}: exposure {rating}"


def test_the_backup_runs_the_services_database_as_its_user_on_the_schedule(modules):
    backup = modules["serviceBackup"]
    service, job, restore, timer = (backup[k] for k in ("devsecops-app", "devsecops-app-backup", "restore", "timer"))
    settings = modules["units"]["backup"]["settings"]
    assert backup["failedAssertions"] == []
    # The interface: backup --dir DIR --keep N, restore --from FILE (backup-interface).
    command = job["serviceConfig"]["ExecStart"].split()
    assert command[1:] == ["backup", "--dir", "/var/lib/devsecops-app-backups", "--keep", str(settings["keep"])]
    assert command[0] == service["serviceConfig"]["ExecStart"]
    assert restore["serviceConfig"]["ExecStart"].split()[1:] == ["restore", "--from", "/var/lib/devsecops-app-backups/%i"]
    for unit in (job, restore):
        config = unit["serviceConfig"]
        # The service's database, as the service's dynamic user (the unit name is its user name).
        assert unit["environment"]["DATABASE_URL"] == service["environment"]["DATABASE_URL"]
        assert not {"API_TOKEN_FILE", "PORT", "HOST"} & set(unit["environment"]), "a database tool needs no token or port"
        assert config["DynamicUser"] is True and config["User"] == "devsecops-app"
        assert config["StateDirectory"] == ["devsecops-app", "devsecops-app-backups"]
        assert config["Type"] == "oneshot" and config["PrivateNetwork"] is True
    assert timer["wantedBy"] == ["timers.target"]
    assert timer["timerConfig"]["OnCalendar"] == settings["schedule"] and timer["timerConfig"]["Persistent"] is True
    ok, parsed = systemd_units.calendar(timer["timerConfig"]["OnCalendar"])
    assert ok, parsed
    # Off by default, and refused where there is no SQLite file to copy.
    assert backup["byDefault"] == {"services": ["devsecops-app"], "timers": []}
    assert any("backup.enable copies a SQLite database" in m for m in backup["onPostgres"]["failedAssertions"])


def rendered_units(units):
    """Every unit file the evaluated configurations write, by a path of names."""
    if isinstance(units, str):
        yield (), units
    elif isinstance(units, dict):
        for key, value in units.items():
            if key not in ("settings", "scripts", "apiTokenFile"):
                for path, text in rendered_units(value):
                    yield (key, *path), text


def test_no_unit_conflicts_with_another_and_a_restore_waits_for_a_running_backup(modules):
    # Conflicts= stops the other unit in both directions (systemd.unit(5)): on the restore it let
    # a backup the timer started SIGTERM a restore half way. The database lock keeps a backup and
    # a restore apart; the restore is ordered after a backup that runs.
    rendered = dict(rendered_units(modules["units"]))
    assert ("backup", "files", "devsecops-app-restore@") in rendered and len(rendered) > 5, sorted(rendered)
    conflicting = {path: line for path, text in rendered.items() for line in text.splitlines()
                   if line.startswith("Conflicts=")}
    assert conflicting == {}, conflicting
    restore = modules["serviceBackup"]["restore"]
    assert restore["conflicts"] == [] and "Conflicts" not in restore["unitConfig"]
    assert restore["after"] == ["devsecops-app-backup.service"]
    restore_text = rendered[("backup", "files", "devsecops-app-restore@")]
    assert "After=devsecops-app-backup.service" in restore_text.splitlines()
    # Nothing orders the backup after a restore (that and the line above would be a cycle).
    assert not any("restore" in unit for unit in modules["serviceBackup"]["devsecops-app-backup"]["after"])


def test_verify_reports_a_timer_with_a_schedule_systemd_cannot_parse(modules, tmp_path):
    paths = install_backup_units(modules, tmp_path / "backup")
    timer = paths["devsecops-app-backup.timer"]
    with open(timer) as f:
        text = f.read()
    with open(timer, "w") as f:
        f.write(text.replace("OnCalendar=*-*-* 03:17:00", "OnCalendar=every night at three"))
    findings = systemd_units.verify(timer)
    assert any("OnCalendar" in f or "calendar" in f.lower() for f in findings), findings
    assert not systemd_units.calendar("every night at three")[0]


# Prometheus on the appliance and the credentials its Kubernetes discovery reads.

CREDENTIALS_UNIT = "prometheus-k3s-credentials"


def install_prometheus_beside_its_credentials(modules, directory, prometheus_unit=None):
    """The credentials unit as the module writes it, and nixpkgs' prometheus.service as a stand-in
    carrying what the appliance adds to it (its order), side by side as NixOS installs them."""
    directory.mkdir()
    credentials = systemd_units.install(str(directory), CREDENTIALS_UNIT, modules["units"]["appliance"]["files"][CREDENTIALS_UNIT])
    unit = modules["appliance"]["prometheusUnit"] if prometheus_unit is None else prometheus_unit
    lines = [f"{key}={' '.join(unit[option])}" for key, option in
             (("Wants", "wants"), ("Requires", "requires"), ("BindsTo", "bindsTo"), ("After", "after")) if unit[option]]
    prometheus = directory / "prometheus.service"
    prometheus.write_text("[Unit]\n" + "\n".join(lines) + "\n[Service]\nExecStart=/bin/true\n")
    return credentials, str(prometheus)


def test_prometheus_starts_after_the_credentials_its_discovery_reads(modules, tmp_path):
    """Prometheus reads the discovery's ca_file when it loads its configuration, and a discovery
    that fails then stays dropped until the next load: it must start after the unit that writes the
    file, and not depend on it so hard that one failed copy keeps it down."""
    appliance = modules["appliance"]
    (job,) = [c for c in appliance["prometheusScrapeConfigs"] if c.get("kubernetes_sd_configs")]
    (discovery,) = job["kubernetes_sd_configs"]
    script = modules["units"]["scripts"]["appliance"][CREDENTIALS_UNIT]
    # The unit writes exactly the files the discovery reads.
    for path in (discovery["tls_config"]["ca_file"], discovery["authorization"]["credentials_file"]):
        assert f"> {path}\n" in script, path
    unit = appliance["prometheusUnit"]
    assert f"{CREDENTIALS_UNIT}.service" in unit["after"]
    assert f"{CREDENTIALS_UNIT}.service" in unit["wants"]
    assert f"{CREDENTIALS_UNIT}.service" not in unit["requires"] + unit["bindsTo"]
    # A Prometheus that started first (the copy failed or timed out) is restarted once it is done.
    assert script.rstrip().endswith("systemctl try-restart --no-block prometheus.service")
    text = modules["units"]["appliance"]["files"][CREDENTIALS_UNIT]
    assert re.search(r"^TimeoutStartSec=15min$", text, re.M) and re.search(r"^Restart=on-failure$", text, re.M)
    # systemd loads both, in this order, without a cycle.
    for path in install_prometheus_beside_its_credentials(modules, tmp_path / "order"):
        assert systemd_units.verify(path) == [], path


def test_verify_reports_an_ordering_cycle_between_prometheus_and_its_credentials(modules, tmp_path):
    unit = dict(modules["appliance"]["prometheusUnit"])
    credentials, prometheus = install_prometheus_beside_its_credentials(modules, tmp_path / "cycle", unit)
    with open(credentials) as f:
        text = f.read()
    with open(credentials, "w") as f:
        f.write(text.replace("[Unit]\n", "[Unit]\nAfter=prometheus.service\n"))
    findings = systemd_units.verify(prometheus)
    assert any("ordering cycle" in f.lower() for f in findings), findings
