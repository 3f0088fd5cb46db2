#!/usr/bin/env python3
"""Waits for an Argo Rollout to become Healthy, reading the Rollout's own status with kubectl, the
way `kubectl argo rollouts status` does (argoproj/argo-rollouts, commit 9f8d111:
pkg/kubectl-argo-rollouts/cmd/status/status.go waits for Healthy or Degraded;
utils/rollout/rolloututil.go GetRolloutPhase: a spec not yet observed (status.observedGeneration, a
string, below metadata.generation) or a pause being lifted counts as Progressing, else
status.phase and status.message). Helm cannot wait on a Rollout: Helm 4's kstatus reads
observedGeneration as an integer (helm/helm#32615, argo-rollouts#4672).

    k8s/scripts/rollout-status.py NAME --namespace NS [--timeout 10m] [--interval 2]
                                  [--accept-promotion-pause | --stable HASH] [--once]

--accept-promotion-pause also ends the wait when a blue-green update waits for its manual
promotion. The controller adds that pause (reason BlueGreenPause) only once the new ReplicaSet is
fully available and the pre-promotion analysis has succeeded (rollout/bluegreen.go
reconcileBlueGreenPause: ReadyForPause, completedPrePromotionAnalysis); a failed analysis aborts
the update (Degraded). This script checks the same facts in the status before it accepts the pause.
--stable HASH requires the Healthy Rollout to run HASH as its stable pod template (after a
promotion: the promoted version, not a rollback). --once reads the Rollout once instead of
waiting: it succeeds only when it is already where the wait would end.

Prints one line on standard output when it succeeds: `healthy HASH` or `awaiting-promotion HASH`
(the pod-template hash of the version concerned). Exit 0 then; 1 when Degraded, Healthy with
another stable hash than --stable, or not there at the timeout (a rollout waiting for promotion
says so); 2 on bad arguments or when kubectl cannot read it. KUBECTL names the kubectl command
(default kubectl; "microk8s kubectl" on MicroK8s); ROLLOUT_STATUS_INTERVAL the default of
--interval, seconds between reads (2).
"""

import argparse
import json
import os
import re
import shlex
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


def awaiting_promotion(rollout):
    """Why a Paused rollout is not (yet) the blue-green promotion pause with the new version ready,
    or None when it is: paused by BlueGreenPause alone, not by hand, the preview Service on the
    new pod template, and the pre-promotion analysis (when the spec has one) Successful."""
    spec, status = rollout.get("spec", {}), rollout.get("status", {})
    strategy = spec.get("strategy", {}).get("blueGreen")
    reasons = {c.get("reason") for c in status.get("pauseConditions") or []}
    current = status.get("currentPodHash")
    if strategy is None:
        return "not a blue-green rollout"
    if spec.get("paused"):
        return "paused by hand (spec.paused)"
    if reasons != {"BlueGreenPause"}:
        return f"paused for {sorted(r or '?' for r in reasons)}"
    if not current or status.get("blueGreen", {}).get("previewSelector") != current:
        return "the preview Service is not on the new pod template yet"
    if "prePromotionAnalysis" in strategy:
        run = status.get("blueGreen", {}).get("prePromotionAnalysisRunStatus") or {}
        if run.get("status") != "Successful":
            return f"pre-promotion analysis {run.get('status', 'not started')}"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--timeout", type=seconds, default=600)
    parser.add_argument("--interval", type=float, default=float(os.environ.get("ROLLOUT_STATUS_INTERVAL", "2")))
    until = parser.add_mutually_exclusive_group()
    until.add_argument("--accept-promotion-pause", action="store_true")
    until.add_argument("--stable", metavar="HASH")
    parser.add_argument("--once", action="store_true")
    args = parser.parse_args()
    kubectl = shlex.split(os.environ.get("KUBECTL") or "kubectl")
    deadline = time.monotonic() + args.timeout
    last = None
    while True:
        out = subprocess.run([*kubectl, "get", "rollout", args.name, "--namespace", args.namespace, "-o", "json"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"rollout/{args.name}: {out.stderr.strip()}", file=sys.stderr)
            return 2
        try:
            rollout = json.loads(out.stdout)
            current, message = phase(rollout)
        except (ValueError, KeyError, AttributeError, TypeError) as e:
            print(f"rollout/{args.name}: kubectl gave no Rollout ({e}): {out.stdout[:200]!r}", file=sys.stderr)
            return 2
        status = rollout.get("status", {})
        waiting = awaiting_promotion(rollout) if current == "Paused" else "not paused"
        line = f"rollout/{args.name}: {current}" + (f" - {message}" if message else "")
        if current == "Paused" and waiting:
            line += f" ({waiting})"
        if line != last:
            print(line, file=sys.stderr)
            last = line
        if current == "Healthy":
            stable = status.get("stableRS") or status.get("currentPodHash", "")
            if args.stable and stable != args.stable:
                print(f"rollout/{args.name}: Healthy on {stable}, not on {args.stable}", file=sys.stderr)
                return 1
            print(f"healthy {stable}")
            return 0
        if current == "Degraded":
            return 1
        if current == "Paused" and args.accept_promotion_pause and waiting is None:
            print(f"awaiting-promotion {status['currentPodHash']}")
            return 0
        if args.once:
            print(f"rollout/{args.name}: {current}, not where the wait would end", file=sys.stderr)
            return 1
        if time.monotonic() >= deadline:
            hint = ""
            if current == "Paused" and waiting is None:
                hint = f" (waiting for promotion: scripts/promote.sh, or kubectl argo rollouts promote {args.name} -n {args.namespace})"
            print(f"rollout/{args.name}: not Healthy after {args.timeout:.0f} s{hint}", file=sys.stderr)
            return 1
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
