"""k8s/scripts/restore-cnpg.sh against stub `kubectl` and `helm` that record their arguments and
answer from files: the checks refuse before anything changes, a dry run changes nothing, a real
run upgrades the release with the chart's recovery values and waits for the new cluster and the
workload, and the values it sets render (with the real helm) into the restore it promises."""

import os
import shlex
import shutil
import subprocess

import pytest
import yaml

from renders import documents, helm_template
from stubs import recorded, run_script, stub_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESTORE = os.path.join(ROOT, "k8s", "scripts", "restore-cnpg.sh")

STUB = """#!/usr/bin/env bash
# Records each call; answers reads from $STATE: clusters/<name>, rollouts/<name>, backups/<name>
# holding "<phase> <method> <cluster>", release (exists when present).
echo "$(basename "$0") $*" >> "$STUB_LOG"
if [ "$(basename "$0")" = helm ]; then
  case "$1" in
    status) [ -f "$STATE/release" ] ;;
    upgrade) exit "${HELM_UPGRADE_STATUS:-0}" ;;
  esac
  exit
fi
args=" $* "
case "$args" in
  *" get clusters.postgresql.cnpg.io "*) name=${args##* get clusters.postgresql.cnpg.io }; [ -f "$STATE/clusters/${name%% *}" ] ;;
  *" get rollouts.argoproj.io "*) name=${args##* get rollouts.argoproj.io }; [ -f "$STATE/rollouts/${name%% *}" ] ;;
  *" get backups.postgresql.cnpg.io -o jsonpath={range"*)
    cluster=${args#*cluster.name==\\"}; cluster=${cluster%%\\"*}
    for f in "$STATE"/backups/*; do
      [ -f "$f" ] || continue
      read -r phase _ owner < "$f"
      if [ "$owner" = "$cluster" ]; then echo "$phase"; fi
    done ;;
  *" get backups.postgresql.cnpg.io "*)
    name=${args##* get backups.postgresql.cnpg.io }; name=${name%% *}
    [ -f "$STATE/backups/$name" ] || { echo "NotFound" >&2; exit 1; }
    read -r phase method _ < "$STATE/backups/$name"
    case "$args" in *status.phase*) printf '%s' "$phase" ;; *spec.method*) printf '%s' "$method" ;; esac ;;
  *" wait "*) exit "${WAIT_STATUS:-0}" ;;
esac
"""


@pytest.fixture
def cluster(tmp_path):
    state = tmp_path / "state"
    for sub in ("clusters", "rollouts", "backups"):
        (state / sub).mkdir(parents=True)
    (state / "release").touch()
    (state / "clusters" / "devsecops-app-db").touch()
    (state / "backups" / "devsecops-app-db-20261120020000").write_text("completed plugin devsecops-app-db\n")
    (state / "backups" / "snap-1").write_text("completed volumeSnapshot devsecops-app-db\n")
    (state / "backups" / "snap-failed").write_text("failed volumeSnapshot devsecops-app-db\n")
    return stub_env(tmp_path, {"kubectl": STUB, "helm": STUB}, state), tmp_path


def restore(env, *args):
    return run_script(RESTORE, env, "--namespace", "apps", *args)


calls = recorded


def changing(recorded):
    return [c for c in recorded if c.startswith("helm upgrade") or " wait " in c or "rollout status" in c
            or " delete " in c or " apply " in c]


POINT_IN_TIME = ["--new-cluster", "devsecops-app-db-r1", "--from-cluster", "devsecops-app-db",
                 "--target-time", "2026-11-20T10:00:00Z"]


def test_a_dry_run_checks_everything_and_changes_nothing(cluster):
    env, tmp = cluster
    out = restore(env, *POINT_IN_TIME, "--dry-run")
    assert out.returncode == 0, out.stderr
    recorded = calls(tmp)
    assert changing(recorded) == [], recorded
    assert any(c.startswith("helm status devsecops-app") for c in recorded), "the release was not checked"
    assert any("get clusters.postgresql.cnpg.io devsecops-app-db-r1" in c for c in recorded), "the new name was not checked"
    assert any("get backups.postgresql.cnpg.io -o jsonpath={range" in c for c in recorded), "the backups were not checked"
    planned = [line for line in out.stdout.splitlines() if line.startswith("would run:")]
    assert any("helm upgrade devsecops-app" in line and "--reuse-values" in line for line in planned), planned
    assert any("wait clusters.postgresql.cnpg.io/devsecops-app-db-r1 --for=condition=Ready" in line for line in planned)
    assert any("rollout status deployment/devsecops-app" in line for line in planned)


def test_a_restore_upgrades_the_release_then_waits_for_the_cluster_and_the_workload(cluster):
    env, tmp = cluster
    out = restore(env, *POINT_IN_TIME)
    assert out.returncode == 0, out.stderr
    steps = changing(calls(tmp))
    assert [s.split()[:2] for s in steps] == [["helm", "upgrade"], ["kubectl", "-n"], ["kubectl", "-n"]], steps
    upgrade = shlex.split(steps[0])
    assert "--reuse-values" in upgrade and upgrade[upgrade.index("--namespace") + 1] == "apps"
    assert "wait clusters.postgresql.cnpg.io/devsecops-app-db-r1 --for=condition=Ready --timeout=30m" in steps[1]
    assert "rollout status deployment/devsecops-app" in steps[2]
    assert "delete clusters.postgresql.cnpg.io" in out.stderr and "--values-only" in out.stderr


def test_a_rollout_is_waited_for_with_rollout_status(cluster):
    env, tmp = cluster
    (tmp / "state" / "rollouts" / "devsecops-app").touch()
    out = restore(env, "--new-cluster", "db-2", "--backup", "snap-1", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert any("k8s/scripts/rollout-status.py devsecops-app --namespace apps" in line for line in out.stdout.splitlines())


@pytest.mark.parametrize("args,message", [
    (["--new-cluster", "devsecops-app-db", "--backup", "snap-1"], "exists already"),
    (["--new-cluster", "db-2", "--backup", "snap-failed"], "is 'failed', not completed"),
    (["--new-cluster", "db-2", "--backup", "devsecops-app-db-20261120020000"], "restore object store backups with --from-cluster"),
    (["--new-cluster", "db-2", "--backup", "nope"], "no Backup nope"),
    (["--new-cluster", "db-2", "--from-cluster", "other-db"], "no completed base backup of other-db"),
])
def test_a_restore_that_cannot_work_is_refused_before_anything_changes(cluster, args, message):
    env, tmp = cluster
    out = restore(env, *args)
    assert out.returncode == 1 and message in out.stderr, out.stderr
    assert changing(calls(tmp)) == []


def test_a_missing_release_is_refused(cluster):
    env, tmp = cluster
    (tmp / "state" / "release").unlink()
    out = restore(env, *POINT_IN_TIME)
    assert out.returncode == 1 and "no release devsecops-app in apps" in out.stderr
    assert changing(calls(tmp)) == []


@pytest.mark.parametrize("args", [
    [],
    ["--new-cluster", "db-2"],
    ["--new-cluster", "db-2", "--backup", "a", "--from-cluster", "b"],
    ["--new-cluster", "db", "--from-cluster", "db"],
    ["--new-cluster", "Db_2", "--backup", "a"],
    ["--new-cluster", "db-2", "--backup", "a", "--target-time", "2026-11-20T10:00:00Z"],
    ["--new-cluster", "db-2", "--from-cluster", "db", "--target-time", "yesterday"],
    ["--bogus"],
])
def test_usage_errors_exit_2_and_touch_nothing(cluster, args):
    env, tmp = cluster
    out = restore(env, *args)
    assert out.returncode == 2, (args, out.stderr)
    assert calls(tmp) == []


def planned_values(stdout):
    (line,) = [line for line in stdout.splitlines() if "helm upgrade" in line]
    words = shlex.split(line.removeprefix("would run:"))
    return [w for i, w in enumerate(words) if w == "--set" or (i > 0 and words[i - 1] == "--set")]


def cluster_of(args):
    out = helm_template(["--set", "database.type=postgres", "--set", "database.cloudnativepg.enabled=true",
                         "--set", "database.cloudnativepg.backup.objectStore.destinationPath=s3://backups/app", *args])
    assert out.returncode == 0, out.stderr
    return next(d for d in documents(out.stdout) if d["kind"] == "Cluster")


@pytest.mark.parametrize("args", [POINT_IN_TIME, ["--new-cluster", "db-2", "--backup", "snap-1"]])
def test_the_values_it_sets_render_the_restore_it_promises(cluster, args, tmp_path):
    env, _ = cluster
    out = restore(env, *args, "--dry-run")
    assert out.returncode == 0, out.stderr
    restored = cluster_of(planned_values(out.stdout))
    assert restored["metadata"]["name"] == args[1]
    recovery = restored["spec"]["bootstrap"]["recovery"]
    if "--backup" in args:
        assert recovery["backup"] == {"name": "snap-1"}
    else:
        assert recovery["source"] == "devsecops-app-db"
        assert recovery["recoveryTarget"]["targetTime"] == "2026-11-20T10:00:00Z"
    # --values-only prints the same settings as a values file, for the environment's overlay.
    values = restore(env, *args, "--values-only")
    assert values.returncode == 0, values.stderr
    path = tmp_path / "restore-values.yaml"
    path.write_text(values.stdout)
    assert yaml.safe_load(values.stdout)["database"]["cloudnativepg"]["clusterName"] == args[1]
    assert cluster_of(["-f", str(path)]) == restored


def test_the_script_passes_shellcheck():
    out = subprocess.run([shutil.which("shellcheck") or "shellcheck", "-x", RESTORE], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
