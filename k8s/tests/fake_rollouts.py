#!/usr/bin/env python3
"""A fake cluster for the deploy, promote and rollback scripts: `helm` (Helm 4 as far as they use
it; `template` is the real helm) and `kubectl` (Rollouts, with a model of the Argo Rollouts
controller) sharing one state file ($FAKE_STATE). Installed on PATH as `helm` and `kubectl` by
fake_cluster() below; every call is recorded in $STUB_LOG.

The controller model follows argoproj/argo-rollouts (commit 9f8d111) for what the scripts depend on:
- rollout/bluegreen.go reconcileBlueGreenPause: an update whose active Service already runs the
  desired pod template (a rollback, an unchanged template) or has no ReplicaSet yet (a first
  install) is fast-tracked, never paused; otherwise, once the new ReplicaSet is available and the
  pre-promotion analysis Successful, the controller adds the BlueGreenPause condition and sets
  controllerPause; with autoPromotionEnabled false nothing but a promotion lifts it. A failed
  analysis aborts the update (phase Degraded). The preview Service follows the new template at once
  (rollout/service.go reconcilePreviewService).
- rollout/sync.go isRollbackWithinWindow (isFastRollback, which isBlueGreenFastTracked consults from
  argo-rollouts 1.10 on, #4787): with spec.rollbackWindow, returning to a ReplicaSet created before
  the stable one with fewer than `revisions` ReplicaSets created in between is fast-tracked like the
  above: no analysis, no pause. The ReplicaSets' creation order is kept in the Rollout's "history"
  (a fake-only field, never shown).
- After `kubectl argo rollouts promote` cleared status.pauseConditions (controllerPause still
  true: GetRolloutPhase says "waiting for rollout to unpause"), the next reconciliation switches
  the active Service and marks the new ReplicaSet stable: Healthy.
- A canary update (no traffic routing) becomes Healthy once its steps have run.
Each `get rollout` returns the state as it is, then the controller takes one step.
$FAKE_VALUES (words, e.g. "--set rollouts.rollbackWindow.blueGreen=true") is added to every
`helm upgrade`: values of this cluster's releases that the scripts do not pass themselves.

Helm 4's default `--wait` (the kstatus watcher) cannot read a Rollout (helm/helm#32615): an
upgrade or rollback that waits that way on a manifest with a Rollout fails as Helm 4 does. Either
of Helm's waits (legacy and watcher; --atomic and --rollback-on-failure imply one) also waits for
every PersistentVolumeClaim to be Bound (helm pkg/kube/ready.go volumeReady): one that nothing
Helm waits on mounts, on a storage class that binds WaitForFirstConsumer, never is, and the wait
fails at its timeout as Helm's does.

Storage (fake_cluster's storage): "local-path" (binds WaitForFirstConsumer, as k3s's does),
"immediate" (binds at once) or "broken" (binds at once, but its provisioner never makes a volume).
A claim on local-path binds when a pod that mounts it is scheduled: a Deployment's once it is
rolled out, a Rollout's once its ReplicaSet is; a CronJob's pods never run here.
"""

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys

import yaml

VERSION = "v4.1.4+g05fa379"
WATCHER_ERROR = ("Error: UPGRADE FAILED: release devsecops-app failed, and has been rolled back due to "
                 "rollback-on-failure being set: .status.observedGeneration accessor error: 3 is of the type "
                 "string, expected int64")


def load():
    with open(os.environ["FAKE_STATE"]) as f:
        return json.load(f)


def save(state):
    with open(os.environ["FAKE_STATE"], "w") as f:
        json.dump(state, f, indent=1)


def fail(message, code=1):
    print(message, file=sys.stderr)
    sys.exit(code)


def option(args, name, default=None):
    return args[args.index(name) + 1] if name in args else default


def rollout_doc(manifest):
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    return next((d for d in docs if d["kind"] == "Rollout"), None)


def template_hash(doc):
    return hashlib.sha256(json.dumps(doc["spec"]["template"], sort_keys=True).encode()).hexdigest()[:10]


def waits_with_watcher(args):
    return "--wait" in args or "--wait=watcher" in args or (
        bool({"--atomic", "--rollback-on-failure"} & set(args)) and not any(a.startswith("--wait") for a in args))


def waits_at_all(args):
    return any(a in ("--wait", "--wait=watcher", "--wait=legacy", "--atomic", "--rollback-on-failure") for a in args)


STORAGE_CLASSES = {"local-path": "WaitForFirstConsumer", "immediate": "Immediate", "broken": "Immediate"}


def claims_in(manifest):
    return [d["metadata"]["name"] for d in yaml.safe_load_all(manifest) if d and d["kind"] == "PersistentVolumeClaim"]


def mounted_claims(manifest, kinds):
    """The claims the pod templates of objects of KINDS mount."""
    found = set()
    for d in yaml.safe_load_all(manifest):
        if d and d["kind"] in kinds:
            template = d["spec"]["template"] if d["kind"] != "CronJob" else d["spec"]["jobTemplate"]["spec"]["template"]
            found |= {v["persistentVolumeClaim"]["claimName"] for v in template["spec"].get("volumes", [])
                      if "persistentVolumeClaim" in v}
    return found


def never_bound_claims(state, manifest):
    """The claims Helm's wait would wait on for ever: not Bound, and bound by nothing it waits on
    (it waits on Deployments; a Rollout is a custom resource whose pods it does not wait for)."""
    pending = [c for c in claims_in(manifest) if state["claims"].get(c, {}).get("phase") != "Bound"]
    if state["storage"] == "broken":
        return pending
    if state["storage"] == "immediate":
        return []
    return [c for c in pending if c not in mounted_claims(manifest, {"Deployment", "StatefulSet"})]


def bind(state, names):
    """A pod mounting NAMES was scheduled: claims on local-path bind."""
    for name in names:
        claim = state["claims"].get(name)
        if claim and claim["phase"] == "Pending" and claim["class"] == "local-path":
            claim["phase"] = "Bound"


def new_revision(state, manifest):
    """Records a release revision with MANIFEST and points the Rollout at its template."""
    number = max(map(int, state["revisions"]), default=0) + 1
    state["revisions"][str(number)] = manifest
    state["current"] = number
    for name in claims_in(manifest):
        # Kept across revisions (helm.sh/resource-policy: keep); the class is written at creation.
        state["claims"].setdefault(name, {"phase": "Bound" if state["storage"] == "immediate" else "Pending",
                                          "class": state["storage"]})
    doc = rollout_doc(manifest)
    if doc is None:
        state["rollout"] = None
        return
    desired = template_hash(doc)
    ro = state.get("rollout")
    if ro is None:
        ro = {"metadata": {"name": doc["metadata"]["name"], "generation": 0}, "status": {}}
        state["rollout"] = ro
    if ro.get("desired") != desired:
        ro["metadata"]["generation"] += 1
    ro["spec"] = doc["spec"]
    ro["desired"] = desired


# --- helm -------------------------------------------------------------------------------------------

def helm(args):
    real = os.environ["REAL_HELM"]
    if args[:1] == ["template"]:
        os.execv(real, [real, *args])
    if args[:1] == ["version"]:
        print(VERSION)
        return 0
    state = load()
    if args[:1] == ["list"]:
        print(json.dumps([{"name": "devsecops-app", "revision": str(state["current"])}] if state["current"] else []))
        return 0
    if args[:1] == ["upgrade"]:
        flags = {"--install", "--atomic", "--rollback-on-failure", "--wait", "--wait=legacy", "--wait=watcher"}
        rest, skip = list(shlex.split(os.environ.get("FAKE_VALUES", ""))), False
        for arg in args[1:]:
            if skip:
                skip = False
            elif arg == "--timeout":
                skip = True
            elif arg not in flags:
                rest.append(arg)
        out = subprocess.run([real, "template", *rest], capture_output=True, text=True)
        if out.returncode != 0:
            fail(out.stderr)
        if waits_with_watcher(args) and rollout_doc(out.stdout):
            fail(WATCHER_ERROR)
        if waits_at_all(args) and never_bound_claims(state, out.stdout):
            fail("Error: UPGRADE FAILED: context deadline exceeded (waiting for persistentvolumeclaim "
                 f"{never_bound_claims(state, out.stdout)[0]} to be Bound)")
        if os.environ.get("HELM_UPGRADE_STATUS", "0") != "0":
            fail("Error: UPGRADE FAILED: context deadline exceeded")
        new_revision(state, out.stdout)
        save(state)
        return 0
    if args[:2] == ["get", "manifest"]:
        revision = option(args, "--revision", str(state["current"]))
        if revision not in state["revisions"]:
            fail(f"Error: release: not found (revision {revision})")
        print(state["revisions"][revision])
        return 0
    if args[:1] == ["rollback"]:
        revision = args[2]
        if revision not in state["revisions"]:
            fail(f"Error: release has no {revision} version")
        if waits_with_watcher(args) and rollout_doc(state["revisions"][revision]):
            fail(WATCHER_ERROR.replace("UPGRADE", "ROLLBACK"))
        if waits_at_all(args) and never_bound_claims(state, state["revisions"][revision]):
            fail("Error: context deadline exceeded")
        new_revision(state, state["revisions"][revision])
        save(state)
        print("Rollback was a success! Happy Helming!")
        return 0
    if args[:1] == ["test"]:
        status = os.environ.get("HELM_TEST_STATUS", "0").split(",")
        count = state.setdefault("tests", 0)
        state["tests"] = count + 1
        save(state)
        return int(status[min(count, len(status) - 1)])
    fail(f"fake helm: {' '.join(args)} is not modelled", 3)


# --- kubectl and the controller ------------------------------------------------------------------

def phase(ro):
    """What the controller writes into status.phase/message (CalculateRolloutPhase)."""
    s = ro["status"]
    if s.get("abort"):
        return "Degraded", "RolloutAborted: Rollout aborted update to revision: Metric \"success-rate\" assessed Failed"
    if s.get("pauseConditions"):
        return "Paused", s["pauseConditions"][0]["reason"]
    if s.get("currentPodHash") != s.get("stableRS"):
        if "blueGreen" in ro["spec"]["strategy"]:
            return "Progressing", "active service cutover pending"
        return "Progressing", "waiting for all steps to complete"
    return "Healthy", ""


def within_window(ro):
    """isRollbackWithinWindow: the desired ReplicaSet was created before the stable one, and fewer
    than spec.rollbackWindow.revisions ReplicaSets were created between them."""
    revisions = (ro["spec"].get("rollbackWindow") or {}).get("revisions", 0)
    history, s = ro.get("history", []), ro["status"]
    if revisions <= 0 or s.get("currentPodHash") not in history or s.get("stableRS") not in history:
        return False
    target, stable = history.index(s["currentPodHash"]), history.index(s["stableRS"])
    return target < stable and stable - target - 1 < revisions


def reconcile(ro):
    """One reconciliation of the controller."""
    s = ro["status"]
    bg = "blueGreen" in ro["spec"]["strategy"]
    if s.get("observedGeneration") != str(ro["metadata"]["generation"]):
        s["observedGeneration"] = str(ro["metadata"]["generation"])
        if s.get("currentPodHash") != ro["desired"]:
            # The stable ReplicaSet is still available (a rollback); a new one takes its time.
            ticks = 0 if ro["desired"] == s.get("stableRS") else int(os.environ.get("FAKE_TICKS_TO_AVAILABLE", "1"))
            s.update(currentPodHash=ro["desired"], pauseConditions=None, controllerPause=False, abort=False,
                     ticksToAvailable=ticks)
            history = ro.setdefault("history", [])
            if ro["desired"] not in history:
                history.append(ro["desired"])
            if bg:
                s.setdefault("blueGreen", {})["prePromotionAnalysisRunStatus"] = None
    elif s.get("abort"):
        pass
    elif s.get("ticksToAvailable", 0) > 0:
        s["ticksToAvailable"] -= 1
        if bg:
            s["blueGreen"]["previewSelector"] = s["currentPodHash"]
        ro["status"].update(phase="Progressing", message="updated replicas are still becoming available")
        return
    elif not bg:
        s["stableRS"] = s["currentPodHash"]
    else:
        g = s["blueGreen"]
        g["previewSelector"] = s["currentPodHash"]
        if not g.get("activeSelector") or g["activeSelector"] == s["currentPodHash"] or within_window(ro):
            # isBlueGreenFastTracked: a first install, a return to the template the active Service
            # runs (an update discarded before promotion), an unchanged template, a rollback within
            # spec.rollbackWindow. Any other return to an earlier template after a promotion is not
            # (past scaleDownDelaySeconds, modelled as always over): it runs its analysis and pauses
            # like any update.
            g["activeSelector"] = s["stableRS"] = s["currentPodHash"]
            s.update(pauseConditions=None, controllerPause=False)
        elif "prePromotionAnalysis" in ro["spec"]["strategy"]["blueGreen"] and \
                (g.get("prePromotionAnalysisRunStatus") or {}).get("status") != "Successful":
            run = g.get("prePromotionAnalysisRunStatus")
            if run is None:
                g["prePromotionAnalysisRunStatus"] = {"name": "pre-promotion", "status": "Running"}
            else:
                run["status"] = os.environ.get("FAKE_ANALYSIS", "Successful")
                s["abort"] = run["status"] == "Failed"
        elif s.get("pauseConditions"):
            pass  # autoPromotionEnabled: false: only a promotion lifts it
        elif not s.get("controllerPause"):
            s.update(pauseConditions=[{"reason": "BlueGreenPause", "startTime": "2026-01-01T00:00:00Z"}],
                     controllerPause=True)
        else:
            # Promoted: the active Service switches, the new ReplicaSet becomes stable.
            g["activeSelector"] = s["stableRS"] = s["currentPodHash"]
            s["controllerPause"] = False
    s["phase"], s["message"] = phase(ro)


def json_patch(document, operations):
    """RFC 6902 as far as a status patch needs it: test, remove, replace, add."""
    for op in operations:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        target = document
        try:
            for part in parents:
                target = target[int(part)] if isinstance(target, list) else target[part]
            key = int(last) if isinstance(target, list) else last
            if op["op"] == "test":
                if target[key] != op["value"]:
                    return f"test failed at {op['path']}: {target[key]!r} is not {op['value']!r}"
            elif op["op"] == "remove":
                del target[key]
            elif op["op"] in ("replace", "add"):
                target[key] = op["value"]
            else:
                return f"op {op['op']} is not modelled"
        except (KeyError, IndexError, TypeError, ValueError):
            return f"path {op['path']} does not exist"
    return None


def kubectl(args):
    state = load()
    ro = state.get("rollout")
    if args[:1] == ["apply"]:
        return 0
    if args[:2] == ["get", "rollout"]:
        if ro is None or ro["metadata"]["name"] != args[2]:
            fail(f'Error from server (NotFound): rollouts.argoproj.io "{args[2]}" not found')
        shown = {k: v for k, v in ro.items() if k not in ("desired", "history")}
        print(json.dumps(shown))
        reconcile(ro)
        if not ro["status"].get("ticksToAvailable"):
            bind(state, mounted_claims(state["revisions"][str(state["current"])], {"Rollout"}))
        save(state)
        return 0
    if args[:2] == ["rollout", "status"]:
        kind, _, name = args[2].partition("/")
        manifest = state["revisions"].get(str(state["current"]), "")
        docs = [d for d in yaml.safe_load_all(manifest) if d and d["kind"].lower() == kind
                and d["metadata"]["name"] == name]
        if not docs:
            fail(f'Error from server (NotFound): {kind}s.apps "{name}" not found')
        if os.environ.get("FAKE_DEPLOYMENT_FAILS"):
            fail(f'error: deployment "{name}" exceeded its progress deadline')
        bind(state, mounted_claims(manifest, {docs[0]["kind"]}))
        save(state)
        print(f'deployment "{name}" successfully rolled out')
        return 0
    if args[:2] == ["get", "persistentvolumeclaim"]:
        claim = state["claims"].get(args[2])
        if claim is None:
            fail(f'Error from server (NotFound): persistentvolumeclaims "{args[2]}" not found')
        field = {"jsonpath={.status.phase}": claim["phase"], "jsonpath={.spec.storageClassName}": claim["class"]}
        print(field[option(args, "-o")], end="")
        return 0
    if args[:2] == ["get", "storageclass"]:
        if args[2] not in STORAGE_CLASSES:
            fail(f'Error from server (NotFound): storageclasses.storage.k8s.io "{args[2]}" not found')
        assert option(args, "-o") == "jsonpath={.volumeBindingMode}", args
        print(STORAGE_CLASSES[args[2]], end="")
        return 0
    if args[:2] == ["patch", "rollout"] and option(args, "--subresource") == "status" \
            and option(args, "--type") == "json":
        if ro is None or ro["metadata"]["name"] != args[2]:
            fail(f'Error from server (NotFound): rollouts.argoproj.io "{args[2]}" not found')
        changed = json.loads(json.dumps(ro))
        error = json_patch(changed, json.loads(option(args, "-p")))
        if error:
            fail(f'The request is invalid: the server rejected our request due to an error in our request ({error})')
        state["rollout"] = changed
        save(state)
        print(f"rollout.argoproj.io/{args[2]} patched")
        return 0
    fail(f"fake kubectl: {' '.join(args)} is not modelled", 3)


def fake_cluster(tmp_path, live_manifest=None, storage="local-path"):
    """PATH, state and call log for a cluster where revision 4 (LIVE_MANIFEST, its Rollout Healthy,
    its workloads' claims bound) is deployed, or nothing when LIVE_MANIFEST is None."""
    assert storage in STORAGE_CLASSES, storage
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    for name in ("helm", "kubectl"):
        (bin_dir / name).write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "$STUB_LOG"\n'
                                    f'exec python3 {os.path.abspath(__file__)} {name} "$@"\n')
        (bin_dir / name).chmod(0o755)
    state = {"revisions": {}, "current": None, "rollout": None, "claims": {}, "storage": storage}
    if live_manifest is not None:
        state["revisions"] = {str(n): live_manifest for n in (1, 2, 3)}
        new_revision(state, live_manifest)
        bind(state, mounted_claims(live_manifest, {"Deployment", "StatefulSet", "Rollout"}))
        ro = state["rollout"]
        if ro is not None:
            h = ro["desired"]
            ro["status"] = {"observedGeneration": str(ro["metadata"]["generation"]), "currentPodHash": h,
                            "stableRS": h, "phase": "Healthy", "message": ""}
            ro["history"] = [h]
            if "blueGreen" in ro["spec"]["strategy"]:
                ro["status"]["blueGreen"] = {"activeSelector": h, "previewSelector": h}
    path = tmp_path / "fake-state.json"
    path.write_text(json.dumps(state))
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", STUB_LOG=str(tmp_path / "calls"),
               FAKE_STATE=str(path), REAL_HELM=shutil.which("helm"), DEPLOY_STATE_DIR=str(tmp_path / "state"),
               ROLLOUT_STATUS_INTERVAL="0.05")
    return env, path


def rollout_state(path):
    return json.loads(path.read_text())["rollout"]


if __name__ == "__main__":
    sys.exit({"helm": helm, "kubectl": kubectl}[sys.argv[1]](sys.argv[2:]))
