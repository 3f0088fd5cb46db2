"""k8s/scripts/restore-sqlite.py against a stub `kubectl` that answers with the chart's own render
(the backup CronJob and the Deployment of the sqlite-persistent-ingress value set) and records
every call: the service is stopped before the restore job and started again whatever the job's
outcome, the job is the CronJob's pod template with the restore command on the database's node,
a dry run changes nothing."""

import json
import os

import pytest

from renders import VALUE_SETS, documents, helm_template, run
from stubs import recorded, run_script, stub_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESTORE = os.path.join(ROOT, "k8s", "scripts", "restore-sqlite.py")
BACKUP = "devsecops-app-20261120T031700.000Z.db"

STUB = """#!/usr/bin/env bash
echo "kubectl $*" >> "$STUB_LOG"
shift 2  # -n NAMESPACE
case "$1 $2" in
  "get cronjob") [ -f "$STATE/cronjob.json" ] && cat "$STATE/cronjob.json" || { echo 'Error from server (NotFound): cronjobs.batch "devsecops-app-backup" not found' >&2; exit 1; } ;;
  "get deployment") cat "$STATE/deployment.json" ;;
  "get pvc") cat "$STATE/pvc.json" ;;
  "get pods") echo '{"items": []}' ;;
  "create -f") cat > "$STATE/created.json" ;;
  "wait --for=delete") echo "error: no matching resources found" >&2; exit 1 ;;
  "wait --for=condition=complete") exit "${JOB_STATUS:-0}" ;;
  "logs -l") cat "$STATE/backup-logs" ;;
  "logs job/"*) echo '{"level":"critical","message":"the backup file is truncated"}' ;;
esac
exit 0
"""


@pytest.fixture(scope="module")
def render():
    out = helm_template(VALUE_SETS["sqlite-persistent-ingress"])
    assert out.returncode == 0, out.stderr
    return documents(out.stdout)


@pytest.fixture
def cluster(tmp_path, render):
    state = tmp_path / "state"
    state.mkdir()
    (state / "cronjob.json").write_text(json.dumps(next(d for d in render if d["kind"] == "CronJob")))
    (state / "deployment.json").write_text(json.dumps(next(d for d in render if d["kind"] == "Deployment")))
    (state / "pvc.json").write_text(json.dumps({"metadata": {"name": "devsecops-app-data", "annotations": {
        "volume.kubernetes.io/selected-node": "node-1"}}}))
    (state / "backup-logs").write_text("\n".join([
        json.dumps({"event": "backup_completed", "path": "/backups/devsecops-app-20261119T031700.000Z.db",
                    "taken_at": "2026-11-19T03:17:00Z"}),
        "not json",
        json.dumps({"event": "backup_completed", "path": f"/backups/{BACKUP}", "taken_at": "2026-11-20T03:17:00Z"}),
        json.dumps({"event": "access", "path": "/health"})]) + "\n")
    return stub_env(tmp_path, {"kubectl": STUB}, state), tmp_path


def restore(env, *args):
    return run_script(RESTORE, env, "--namespace", "apps", *args)


def calls(tmp):
    """The calls without `kubectl -n NAMESPACE`."""
    return [c.split(" ", 3)[3] for c in recorded(tmp)]


def changing(recorded):
    return [c for c in recorded if c.split()[0] in ("scale", "create", "delete", "apply", "patch") or
            c.startswith(("wait", "rollout"))]


def test_a_dry_run_shows_the_job_and_changes_nothing(cluster, render):
    env, tmp = cluster
    out = restore(env, "--backup", BACKUP, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert changing(calls(tmp)) == []
    assert "scale deployment devsecops-app --replicas=0" in out.stdout and "on node node-1" in out.stdout


def test_the_service_stops_the_backup_is_restored_on_its_node_and_the_service_starts_again(cluster, render, tmp_path):
    env, tmp = cluster
    out = restore(env, "--backup", BACKUP)
    assert out.returncode == 0, out.stderr
    steps = changing(calls(tmp))
    assert [s.split()[0] for s in steps] == ["scale", "wait", "create", "wait", "scale", "rollout"], steps
    assert steps[0] == "scale deployment devsecops-app --replicas=0" and steps[4] == "scale deployment devsecops-app --replicas=1"
    job = json.loads((tmp / "state" / "created.json").read_text())
    cronjob = next(d for d in render if d["kind"] == "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    spec = job["spec"]["template"]["spec"]
    assert spec["containers"][0]["args"] == ["restore", "--from", f"/backups/{BACKUP}"]
    assert spec["nodeSelector"] == {"kubernetes.io/hostname": "node-1"} and "affinity" not in spec
    # Everything else is the backup job's: volumes, security contexts, environment.
    for key in ("volumes", "securityContext", "serviceAccountName", "automountServiceAccountToken"):
        assert spec[key] == cronjob[key], key
    assert {k: v for k, v in spec["containers"][0].items() if k != "args"} == \
        {k: v for k, v in cronjob["containers"][0].items() if k != "args"}
    assert job["spec"]["backoffLimit"] == 0
    # A valid Job for the API server.
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    checked = run(["kubernetes-validate", "--strict", "-k", "1.30.0", str(path)])
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_failed_restore_starts_the_service_again_on_its_database(cluster):
    env, tmp = cluster
    out = restore(dict(env, JOB_STATUS="1"), "--backup", BACKUP)
    assert out.returncode == 1
    assert "nothing was replaced" in out.stderr and "the backup file is truncated" in out.stderr
    steps = changing(calls(tmp))
    assert steps[-1] == "scale deployment devsecops-app --replicas=1", steps


def test_without_the_backup_cronjob_nothing_is_stopped(cluster):
    env, tmp = cluster
    (tmp / "state" / "cronjob.json").unlink()
    out = restore(env, "--backup", BACKUP)
    assert out.returncode == 1 and "not found" in out.stderr
    assert changing(calls(tmp)) == []


def test_list_prints_the_logged_backups_oldest_first(cluster):
    env, _ = cluster
    out = restore(env, "--list")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["devsecops-app-20261119T031700.000Z.db", BACKUP]


@pytest.mark.parametrize("args", [[], ["--backup", "../etc/passwd"], ["--backup", "x.db"],
                                  ["--backup", BACKUP, "--list"], ["--bogus"]])
def test_usage_errors_exit_2_and_touch_nothing(cluster, args):
    env, tmp = cluster
    out = restore(env, *args)
    assert out.returncode == 2, out.stderr
    assert calls(tmp) == []
