#!/usr/bin/env python3
"""Restores the service's SQLite database from a backup the chart's backup CronJob took.

    k8s/scripts/restore-sqlite.py --list [--namespace NS] [--release NAME]
    k8s/scripts/restore-sqlite.py --backup FILE [--namespace NS] [--release NAME] [--timeout SECONDS] [--dry-run]

`devsecops-app restore` refuses while the service holds the database (exit 3), so this scales the
Deployment to zero, runs the backup CronJob's own pod template as a Job with `restore --from
/backups/FILE` on the node that holds the database's volume (ReadWriteOnce), and scales the
Deployment back. A restore that fails replaces nothing (the command verifies the copy first): the
service comes back on the database it had, and this exits 1. --list prints the backups the kept
backup jobs logged. --dry-run prints what would change and changes nothing. See docs/kubernetes.md,
"Backups and restore". Needs kubectl on PATH (KUBECTL overrides it).
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys

KUBECTL = os.environ.get("KUBECTL", "kubectl")
BACKUP_FILE = re.compile(r"devsecops-app-[0-9A-Za-z.:-]+\.db")


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
        cronjob = get_json(ns, "cronjob", f"{release}-backup")
        deployment = get_json(ns, "deployment", release)
        replicas = deployment["spec"].get("replicas", 1) or 1
        node = database_node(ns, release)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")
        job = restore_job(cronjob, args.backup, node, f"{release}-restore-{stamp}")
        selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
        steps = [
            ("scale", "deployment", release, "--replicas=0"),
            ("wait", "--for=delete", "pod", "-l", selector, f"--timeout={args.timeout}s"),
            ("create", "-f", "-"),
            ("wait", "--for=condition=complete", f"job/{job['metadata']['name']}", f"--timeout={args.timeout}s"),
            ("scale", "deployment", release, f"--replicas={replicas}"),
            ("rollout", "status", f"deployment/{release}", f"--timeout={args.timeout}s"),
        ]
        if args.dry_run:
            print(f"restore {args.backup} into {release} in {ns} on node {node or '(any)'}; would run:")
            for step in steps:
                print("  kubectl -n", ns, *step)
            print(json.dumps(job, indent=2))
            return 0
        print(f"stopping {release} (restore refuses while the service holds the database)", file=sys.stderr)
        kubectl(ns, *steps[0])
        try:
            gone = kubectl(ns, *steps[1], check=False)
            if gone.returncode != 0 and "no matching resources" not in gone.stderr:
                raise Failed(f"the service's pods did not stop: {gone.stderr.strip()}")
            kubectl(ns, *steps[2], stdin=json.dumps(job))
            done = kubectl(ns, *steps[3], check=False)
            if done.returncode != 0:
                logs = kubectl(ns, "logs", f"job/{job['metadata']['name']}", check=False)
                raise Failed(f"the restore job did not complete; nothing was replaced:\n{logs.stdout}{logs.stderr}")
        finally:
            print(f"starting {release} again ({replicas} replica)", file=sys.stderr)
            kubectl(ns, *steps[4])
        kubectl(ns, *steps[5])
        print(f"restored {args.backup}; the replaced database is kept beside it as *.pre-restore-* until you delete it",
              file=sys.stderr)
        return 0
    except Failed as e:
        print(f"restore-sqlite: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
