#!/usr/bin/env python3
"""Waits for an Argo Rollout to become Healthy, reading the Rollout's own status with kubectl, the
way `kubectl argo rollouts status` does (argoproj/argo-rollouts, commit 9f8d111:
pkg/kubectl-argo-rollouts/cmd/status/status.go waits for Healthy or Degraded;
utils/rollout/rolloututil.go GetRolloutPhase: a spec not yet observed (status.observedGeneration, a
string, below metadata.generation) or a pause being lifted counts as Progressing, else
status.phase and status.message). Helm cannot wait on a Rollout: Helm 4's kstatus reads
observedGeneration as an integer (helm/helm#32615, argo-rollouts#4672).

    k8s/scripts/rollout-status.py NAME --namespace NS [--timeout 10m] [--interval 2]

Exit 0 when Healthy; 1 when Degraded or still not Healthy at the timeout (a blue-green rollout
waiting for its manual promotion says so); 2 on bad arguments or when kubectl cannot read it.
"""

import argparse
import json
import re
import subprocess
import sys
import time


def seconds(duration):
    """Go durations as Helm takes them: 10m, 1h30m, 90s."""
    total = sum(float(v) * {"h": 3600, "m": 60, "s": 1}[u] for v, u in re.findall(r"([0-9.]+)([hms])", duration))
    if not total or not re.fullmatch(r"([0-9.]+[hms])+", duration):
        raise argparse.ArgumentTypeError(f"not a duration: {duration!r}")
    return total


def phase(rollout):
    """(phase, message) as GetRolloutPhase computes it."""
    status = rollout.get("status", {})
    observed = str(status.get("observedGeneration", ""))
    if observed.isdigit() and int(observed) < rollout["metadata"].get("generation", 0):
        return "Progressing", "waiting for rollout spec update to be observed"
    if status.get("controllerPause") and not status.get("pauseConditions"):
        return "Progressing", "waiting for rollout to unpause"
    return status.get("phase") or "Progressing", status.get("message", "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--timeout", type=seconds, default=600)
    parser.add_argument("--interval", type=float, default=2)
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    last = None
    while True:
        out = subprocess.run(["kubectl", "get", "rollout", args.name, "--namespace", args.namespace, "-o", "json"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"rollout/{args.name}: {out.stderr.strip()}", file=sys.stderr)
            return 2
        current, message = phase(json.loads(out.stdout))
        line = f"rollout/{args.name}: {current}" + (f" - {message}" if message else "")
        if line != last:
            print(line, file=sys.stderr)
            last = line
        if current == "Healthy":
            return 0
        if current == "Degraded":
            return 1
        if time.monotonic() >= deadline:
            hint = ""
            if any(c.get("reason") == "BlueGreenPause"
                   for c in json.loads(out.stdout).get("status", {}).get("pauseConditions", [])):
                hint = f" (waiting for promotion: kubectl argo rollouts promote {args.name} -n {args.namespace})"
            print(f"rollout/{args.name}: not Healthy after {args.timeout:.0f} s{hint}", file=sys.stderr)
            return 1
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
