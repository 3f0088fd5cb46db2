#!/usr/bin/env python3
"""Restores the service's SQLite database from a backup the chart's backup CronJob took.

    k8s/scripts/restore-sqlite.py --list [--namespace NS] [--release NAME]
    k8s/scripts/restore-sqlite.py --backup FILE [--namespace NS] [--release NAME] [--timeout SECONDS] [--dry-run]

`devsecops-app restore` refuses while the service holds the database (exit 3), so this suspends
the backup CronJob (and waits for a backup it already started), scales the Deployment to zero,
runs the backup CronJob's own pod template as a Job with `restore --from /backups/FILE` on the node
that holds the database's volume (ReadWriteOnce), waits until that Job completes or fails, scales
the Deployment back and puts the CronJob's `suspend` back as it was.

A Job that fails prints its log (the command says whether it changed anything: it verifies the copy
before replacing, so a refused backup replaces nothing) and this exits 1. A Job still Pending or
running at --timeout is deleted (foreground, waited for) before the service starts again, so the two
never run at once; "nothing was replaced" is said only when the Job is gone and its container never
started. If the Job cannot be deleted, the Deployment stays at zero and this says what to do.
--list prints the backups the kept backup jobs logged. --dry-run prints what would change and
changes nothing. See docs/kubernetes.md, "Backups and restore". Needs kubectl on PATH (KUBECTL
overrides it); RESTORE_POLL_SECONDS sets how often the Job's status is read (2).
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time

KUBECTL = os.environ.get("KUBECTL", "kubectl")
BACKUP_FILE = re.compile(r"devsecops-app-[0-9A-Za-z.:-]+\.db")
POLL_SECONDS = float(os.environ.get("RESTORE_POLL_SECONDS", "2"))


class Failed(Exception):
    pass


def kubectl(namespace, *args, stdin=None, check=True):
    out = subprocess.run([KUBECTL, "-n", namespace, *args], input=stdin, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise Failed(f"kubectl {' '.join(args)}: {out.stderr.strip() or out.stdout.strip()}")
    return out


def get_json(namespace, *args):
    return json.loads(kubectl(namespace, "get", *args, "-o", "json").stdout)


def listed_backups(namespace, release):
    """The files the kept backup jobs logged (their `backup_completed` lines), oldest first."""
    selector = f"app.kubernetes.io/component=backup,app.kubernetes.io/instance={release}"
    logs = kubectl(namespace, "logs", "-l", selector, "--tail=-1", "--prefix=false", check=False).stdout
    found = []
    for line in logs.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "backup_completed" and entry.get("path"):
            found.append((entry.get("taken_at", ""), os.path.basename(entry["path"])))
    return [name for _, name in sorted(found)]


def database_node(namespace, release):
    """The node holding the database's claim: the one the provisioner chose for it, else the one
    the service's pod runs on."""
    claim = get_json(namespace, "pvc", f"{release}-data")
    node = claim["metadata"].get("annotations", {}).get("volume.kubernetes.io/selected-node")
    if node:
        return node
    pods = get_json(namespace, "pods", "-l", f"app.kubernetes.io/name=devsecops-app,app.kubernetes.io/instance={release}")
    nodes = {p["spec"].get("nodeName") for p in pods["items"]} - {None}
    return nodes.pop() if len(nodes) == 1 else None


def restore_job(cronjob, backup, node, name):
    """The backup CronJob's job with the restore command, pinned to the database's node instead of
    next to the service's pod (there is none while restoring)."""
    job = cronjob["spec"]["jobTemplate"]
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    container["args"] = ["restore", "--from", f"/backups/{backup}"]
    spec.pop("affinity", None)
    if node:
        spec["nodeSelector"] = {**spec.get("nodeSelector", {}), "kubernetes.io/hostname": node}
    job["spec"].pop("activeDeadlineSeconds", None)
    job["spec"]["backoffLimit"] = 0
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/component": "restore"}},
            "spec": job["spec"]}


def job_outcome(namespace, name):
    """"complete", "failed", "gone" (deleted), or None while the Job runs or waits for its pod, or
    cannot be read just now. Only the terminal conditions count: `FailureTarget` comes before the
    Job's pods have stopped."""
    out = kubectl(namespace, "get", "job", name, "-o", "json", check=False)
    if out.returncode != 0:
        return "gone" if "NotFound" in out.stderr else None
    conditions = json.loads(out.stdout).get("status", {}).get("conditions") or []
    true = {c.get("type") for c in conditions if c.get("status") == "True"}
    if "Failed" in true:
        return "failed"
    if "Complete" in true:
        return "complete"
    return None


def wait_for_jobs(namespace, names, timeout):
    """Polls each Job until it has completed or failed (`kubectl wait --for=condition=complete`
    never returns for a Job that failed: kubernetes/kubernetes#100248). Returns name -> outcome,
    None for a Job still Pending or running (or unreadable) at the deadline."""
    deadline = time.monotonic() + timeout
    outcomes = dict.fromkeys(names)
    while True:
        for name in [n for n, o in outcomes.items() if o is None]:
            outcomes[name] = job_outcome(namespace, name)
        if all(outcomes.values()) or time.monotonic() >= deadline:
            return outcomes
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def container_started(namespace, job_name, pods):
    """Whether a container of the Job's pods ever started: in the pods' status as last read, or in
    a `Started` event of one of them (events outlive the pods a deletion removed)."""
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            if set(status.get("state") or {}) - {"waiting"} or status.get("lastState") or status.get("restartCount"):
                return True
    events = kubectl(namespace, "get", "events", "--field-selector", "involvedObject.kind=Pod,reason=Started",
                     "-o", "json", check=False)
    if events.returncode != 0:
        return True  # unknown: assume it ran
    names = {p["metadata"]["name"] for p in pods}
    for event in json.loads(events.stdout).get("items", []):
        name = event.get("involvedObject", {}).get("name", "")
        if name in names or name.startswith(f"{job_name}-"):
            return True
    return False


def job_log(namespace, name):
    logs = kubectl(namespace, "logs", f"job/{name}", "--tail=-1", check=False)
    return (logs.stdout + logs.stderr).strip() or "(no log)"


def stop_job(namespace, name, timeout):
    """Deletes a Job that is still Pending or running, its pods first, and waits until it is gone.
    Returns the reason it failed to go, or None."""
    pods = kubectl(namespace, "get", "pods", "-l", f"job-name={name}", "-o", "json", check=False)
    pods = json.loads(pods.stdout).get("items", []) if pods.returncode == 0 else None
    log = job_log(namespace, name)
    deleted = kubectl(namespace, "delete", "job", name, "--ignore-not-found", "--cascade=foreground", "--wait=true",
                      f"--timeout={timeout}s", check=False)
    left = kubectl(namespace, "get", "job", name, "--ignore-not-found", "-o", "name", check=False)
    if deleted.returncode != 0 or left.returncode != 0 or left.stdout.strip():
        return None, log, (deleted.stderr.strip() or left.stderr.strip() or f"job/{name} is still there")
    started = True if pods is None else container_started(namespace, name, pods)
    return started, log, None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backup", help="the backup's file name, as --list prints it")
    parser.add_argument("--list", action="store_true", help="print the backups the kept backup jobs logged")
    parser.add_argument("--namespace", default="devsecops-development")
    parser.add_argument("--release", default="devsecops-app")
    parser.add_argument("--timeout", type=int, default=600, help="seconds for each wait")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if args.list == bool(args.backup):
        parser.error("--backup FILE or --list")
    if args.backup and not BACKUP_FILE.fullmatch(args.backup):
        parser.error(f"--backup: a file name as the backup command writes it (devsecops-app-<time>.db), not {args.backup!r}")
    ns, release = args.namespace, args.release
    try:
        if args.list:
            print("\n".join(listed_backups(ns, release)) or "no backup in the kept backup jobs' logs")
            return 0
        return restore(ns, release, args.backup, args.timeout, args.dry_run)
    except Failed as e:
        print(f"restore-sqlite: {e}", file=sys.stderr)
        return 1


def put_back(ns, step):
    """Undoes a change on the way out; a failure is reported with the command to run, and does not
    hide the error that led here (it fails the run at the end through `failed_put_back`)."""
    out = kubectl(ns, *step, check=False)
    if out.returncode != 0:
        failed_put_back.append(step)
        print(f"restore-sqlite: could not undo a change ({out.stderr.strip()}); run: kubectl -n {ns} "
              + " ".join(f"'{a}'" if "{" in a else a for a in step), file=sys.stderr)


failed_put_back = []


def restore(ns, release, backup, timeout, dry_run):
    cronjob = get_json(ns, "cronjob", f"{release}-backup")
    deployment = get_json(ns, "deployment", release)
    replicas = deployment["spec"].get("replicas", 1) or 1
    suspended = bool(cronjob["spec"].get("suspend", False))
    node = database_node(ns, release)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")
    name = f"{release}-restore-{stamp}"
    job = restore_job(cronjob, backup, node, name)
    selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    suspend = ("patch", "cronjob", f"{release}-backup", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    unsuspend = ("patch", "cronjob", f"{release}-backup", "--type=merge", "-p",
                 json.dumps({"spec": {"suspend": suspended}}, separators=(",", ":")))
    scale_down = ("scale", "deployment", release, "--replicas=0")
    pods_gone = ("wait", "--for=delete", "pod", "-l", selector, f"--timeout={timeout}s")
    scale_up = ("scale", "deployment", release, f"--replicas={replicas}")
    rollout = ("rollout", "status", f"deployment/{release}", f"--timeout={timeout}s")
    if dry_run:
        print(f"restore {backup} into {release} in {ns} on node {node or '(any)'}; would run:")
        for step in (suspend, scale_down, pods_gone, ("create", "-f", "-"),
                     ("get", "job", name, "-o", "json", f"# until Complete or Failed, at most {timeout}s"),
                     scale_up, unsuspend, rollout):
            print("  kubectl -n", ns, *step)
        print(json.dumps(job, indent=2))
        return 0

    print(f"suspending {release}-backup (was suspend={str(suspended).lower()})", file=sys.stderr)
    kubectl(ns, *suspend)
    job_may_run = False  # True from the Job's creation until it has finished or is gone
    try:
        running = [j["name"] for j in get_json(ns, "cronjob", f"{release}-backup").get("status", {}).get("active") or []]
        if running:
            print(f"waiting for the backup already running ({', '.join(running)})", file=sys.stderr)
            if not all(wait_for_jobs(ns, running, timeout).values()):
                raise Failed(f"the running backup ({', '.join(running)}) did not finish within {timeout}s; "
                             "nothing was stopped or replaced")
        print(f"stopping {release} (restore refuses while the service holds the database)", file=sys.stderr)
        kubectl(ns, *scale_down)
        try:
            gone = kubectl(ns, *pods_gone, check=False)
            if gone.returncode != 0 and "no matching resources" not in gone.stderr:
                raise Failed(f"the service's pods did not stop: {gone.stderr.strip()}")
            job_may_run = True
            kubectl(ns, "create", "-f", "-", stdin=json.dumps(job))
            outcome = wait_for_jobs(ns, [name], timeout)[name]
            job_may_run = outcome not in ("complete", "failed")
            if outcome == "failed":
                raise Failed(f"the restore job {name} failed; its log (the command says whether it changed "
                             f"the database):\n{job_log(ns, name)}")
            if outcome != "complete":
                started, log, stuck = stop_job(ns, name, timeout)
                job_may_run = bool(stuck)
                if stuck:
                    raise Failed(f"the restore job {name} neither finished within {timeout}s nor could be "
                                 f"deleted ({stuck}); {release} stays at 0 replicas so that it does not start "
                                 f"beside a restore. Once `kubectl -n {ns} get job {name}` shows it gone or "
                                 f"finished: kubectl -n {ns} {' '.join(scale_up)}\nits log:\n{log}")
                if started:
                    raise Failed(f"the restore job {name} was still running after {timeout}s (or disappeared) and is deleted: "
                                 "the database may or may not have been replaced (a replaced one is kept beside "
                                 f"it as *.pre-restore-*; the log says `restored` if it was):\n{log}")
                why = f"was still Pending after {timeout}s" if outcome is None else "disappeared"
                raise Failed(f"the restore job {name} {why} and is deleted; its container never started: "
                             "nothing was replaced")
        finally:
            if job_may_run:
                print(f"restore-sqlite: {release} stays at 0 replicas: the restore job {name} may still run",
                      file=sys.stderr)
            else:
                print(f"starting {release} again ({replicas} replica)", file=sys.stderr)
                put_back(ns, scale_up)
    finally:
        print(f"setting {release}-backup suspend={str(suspended).lower()} again", file=sys.stderr)
        put_back(ns, unsuspend)
    if failed_put_back:
        raise Failed("restored, but a change could not be undone (see above)")
    kubectl(ns, *rollout)
    print(f"restored {backup}; the replaced database is kept beside it as *.pre-restore-* until you delete it",
          file=sys.stderr)
    return 0

if __name__ == "__main__":
    sys.exit(main())
