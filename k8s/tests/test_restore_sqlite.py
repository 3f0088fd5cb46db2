"""k8s/scripts/restore-sqlite.py against a stub `kubectl` that answers with the chart's own render
(the backup CronJob and the Deployment of the sqlite-persistent-ingress value set) and records
every call: the service is stopped before the restore job and started again whatever the job's
outcome, the job is the CronJob's pod template with the restore command on the database's node,
a dry run changes nothing. The job's outcome is polled (complete or failed), a job left Pending or
running at the timeout is deleted before the service starts, and the backup CronJob is suspended
for the time of the restore."""

import json
import os
import time

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
  "get pods")
    case "$*" in
      *job-name=*) printf '{"items": [{"metadata": {"name": "%s-x7k2p"}, "status": {"containerStatuses": [{"state": {"%s": {}}, "restartCount": 0}]}}]}\\n' "${4#job-name=}" "${POD_STATE:-waiting}" ;;
      *) echo '{"items": []}' ;;
    esac ;;
  "get job")
    if [[ "$*" == *--ignore-not-found* ]]; then
      [ -z "$DELETE_FAILS" ] || echo "job.batch/$3"
      exit 0
    fi
    case "$3" in
      *-restore-*) status="${JOB_STATUS:-complete}" ;;
      *) status=complete ;;
    esac
    case "$status" in
      complete) echo '{"status": {"conditions": [{"type": "Complete", "status": "True"}]}}' ;;
      failed) echo '{"status": {"conditions": [{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]}}' ;;
      *) echo '{"status": {"active": 1}}' ;;
    esac ;;
  "get events")
    if [ -n "$STARTED_EVENT" ]; then
      job=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["metadata"]["name"])' "$STATE/created.json")
      printf '{"items": [{"reason": "Started", "involvedObject": {"kind": "Pod", "name": "%s-x7k2p"}}]}\\n' "$job"
    else
      echo '{"items": []}'
    fi ;;
  "delete job") [ -z "$DELETE_FAILS" ] || { echo "error: timed out waiting for the condition" >&2; exit 1; } ;;
  "create -f") cat > "$STATE/created.json" ;;
  "wait --for=delete") echo "error: no matching resources found" >&2; exit 1 ;;
  "logs -l") cat "$STATE/backup-logs" ;;
  "logs job/"*) echo '{"level":"CRIT","event":"restore_failed","error":"the backup file is truncated; nothing was changed"}' ;;
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
    return dict(stub_env(tmp_path, {"kubectl": STUB}, state), RESTORE_POLL_SECONDS="0.05"), tmp_path


def restore(env, *args):
    return run_script(RESTORE, env, "--namespace", "apps", *args)


def calls(tmp):
    """The calls without `kubectl -n NAMESPACE`."""
    return [c.split(" ", 3)[3] for c in recorded(tmp)]


def changing(recorded):
    return [c for c in recorded if c.split()[0] in ("scale", "create", "delete", "apply", "patch") or
            c.startswith(("wait", "rollout"))]


SUSPEND = "patch cronjob devsecops-app-backup --type=merge -p {\"spec\":{\"suspend\":true}}"
UNSUSPEND = "patch cronjob devsecops-app-backup --type=merge -p {\"spec\":{\"suspend\":false}}"
SCALE_UP = "scale deployment devsecops-app --replicas=1"


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
    assert steps[:3] == [SUSPEND, "scale deployment devsecops-app --replicas=0",
                         "wait --for=delete pod -l app.kubernetes.io/name=devsecops-app,app.kubernetes.io/instance=devsecops-app --timeout=600s"], steps
    assert steps[3] == "create -f -" and steps[4:] == [SCALE_UP, UNSUSPEND, "rollout status deployment/devsecops-app --timeout=600s"], steps
    # The job's status is read between its creation and the scale-up: no `kubectl wait` for one condition.
    everything = calls(tmp)
    polled = everything[everything.index("create -f -") + 1:everything.index(SCALE_UP)]
    assert polled and all(c.startswith("get job devsecops-app-restore-") for c in polled), polled
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


def test_a_failed_restore_returns_at_once_with_the_log_and_starts_the_service_again(cluster):
    # `kubectl wait --for=condition=complete` would sit out the whole timeout on a failed Job.
    env, tmp = cluster
    started = time.monotonic()
    out = restore(dict(env, JOB_STATUS="failed"), "--backup", BACKUP, "--timeout", "40")
    assert time.monotonic() - started < 20
    assert out.returncode == 1
    assert "failed; its log" in out.stderr and "the backup file is truncated; nothing was changed" in out.stderr
    steps = changing(calls(tmp))
    assert steps[-2:] == [SCALE_UP, UNSUSPEND], steps
    assert not any(s.startswith("delete") for s in steps), steps  # kept for inspection; it holds nothing


def test_a_job_still_pending_at_the_timeout_is_deleted_before_the_service_starts(cluster):
    env, tmp = cluster
    out = restore(dict(env, JOB_STATUS="pending", POD_STATE="waiting"), "--backup", BACKUP, "--timeout", "1")
    assert out.returncode == 1
    steps = changing(calls(tmp))
    deletes = [s for s in steps if s.startswith("delete job devsecops-app-restore-")]
    assert len(deletes) == 1 and {"--cascade=foreground", "--wait=true"} <= set(deletes[0].split()), steps
    assert steps.index(deletes[0]) < steps.index(SCALE_UP), steps
    assert steps[-2:] == [SCALE_UP, UNSUSPEND], steps
    assert "never started: nothing was replaced" in out.stderr


@pytest.mark.parametrize("how", ["running", "started-event"])
def test_a_job_that_ran_is_not_said_to_have_replaced_nothing(cluster, how):
    env, tmp = cluster
    env = dict(env, JOB_STATUS="pending", POD_STATE="running")
    if how == "started-event":
        # The pod was Pending when read, and started before the deletion reached it.
        env.update(POD_STATE="waiting", STARTED_EVENT="1")
    out = restore(env, "--backup", BACKUP, "--timeout", "1")
    assert out.returncode == 1
    assert "nothing was replaced" not in out.stderr
    assert "may or may not have been replaced" in out.stderr
    steps = changing(calls(tmp))
    delete = next(s for s in steps if s.startswith("delete job"))
    assert steps.index(delete) < steps.index(SCALE_UP), steps


def test_a_job_that_cannot_be_deleted_keeps_the_service_stopped(cluster):
    env, tmp = cluster
    out = restore(dict(env, JOB_STATUS="pending", DELETE_FAILS="1"), "--backup", BACKUP, "--timeout", "1")
    assert out.returncode == 1
    steps = changing(calls(tmp))
    assert SCALE_UP not in steps, steps
    assert steps[-1] == UNSUSPEND, steps
    assert "stays at 0 replicas" in out.stderr and f"kubectl -n apps {SCALE_UP}" in out.stderr
    assert "nothing was replaced" not in out.stderr


def test_a_suspended_cronjob_stays_suspended(cluster):
    env, tmp = cluster
    cronjob = json.loads((tmp / "state" / "cronjob.json").read_text())
    cronjob["spec"]["suspend"] = True
    (tmp / "state" / "cronjob.json").write_text(json.dumps(cronjob))
    out = restore(env, "--backup", BACKUP)
    assert out.returncode == 0, out.stderr
    patches = [s for s in changing(calls(tmp)) if s.startswith("patch")]
    assert patches == [SUSPEND, SUSPEND], patches


def test_a_running_backup_is_waited_for_before_the_service_stops(cluster):
    env, tmp = cluster
    cronjob = json.loads((tmp / "state" / "cronjob.json").read_text())
    cronjob["status"] = {"active": [{"kind": "Job", "name": "devsecops-app-backup-29400000"}]}
    (tmp / "state" / "cronjob.json").write_text(json.dumps(cronjob))
    out = restore(env, "--backup", BACKUP)
    assert out.returncode == 0, out.stderr
    everything = calls(tmp)
    waited = everything.index("get job devsecops-app-backup-29400000 -o json")
    assert everything.index(SUSPEND) < waited < everything.index("scale deployment devsecops-app --replicas=0")


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
