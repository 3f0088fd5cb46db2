"""scripts/deploy.sh, scripts/promote.sh and scripts/rollback.sh against a fake cluster
(fake_rollouts.py): Helm 4 (its watcher cannot read a Rollout) and an Argo Rollouts controller that
pauses a blue-green update for promotion and keeps it paused until it is promoted, as the real one
does with autoPromotionEnabled: false (production)."""

import json
import os
import re
import subprocess
import time

import pytest
import yaml

from fake_rollouts import fake_cluster, rollout_state
from renders import run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(ROOT, "scripts")
LIVE_IMAGE = "r.example/devsecops-app@sha256:" + "a" * 64
NEW_IMAGE = "r.example/devsecops-app@sha256:" + "b" * 64


def manifest(env_name, image, *extra):
    """What deploy.sh makes Helm install for ENV and IMAGE, rendered by the real helm (EXTRA: the
    cluster's own values, as $FAKE_VALUES adds them to the scripts' upgrades)."""
    repository, digest = image.split("@")
    out = run(["helm", "template", "devsecops-app", os.path.join(ROOT, "k8s", "chart"), "--namespace",
               f"devsecops-{env_name}", "-f", os.path.join(ROOT, "k8s", "overlays", env_name, "values.yaml"),
               "--set-string", f"image.repository={repository}", "--set-string", f"image.digest={digest}", *extra])
    assert out.returncode == 0, out.stderr
    return out.stdout


def script(env, name, *args, timeout=120):
    return subprocess.run([os.path.join(SCRIPTS, name), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def calls(tmp_path):
    log = tmp_path / "calls"
    return log.read_text().splitlines() if log.exists() else []


def records(tmp_path, env_name):
    state = tmp_path / "state"
    return {kind: (state / f"{env_name}.{kind}").read_text() for kind in ("previous-revision", "awaiting-promotion")
            if (state / f"{env_name}.{kind}").exists()}


@pytest.fixture
def production(tmp_path):
    """Production with revision 4 live (the live image, Healthy) on the fake cluster."""
    env, state = fake_cluster(tmp_path, manifest("production", LIVE_IMAGE))
    return env, state, tmp_path


def test_production_stops_at_the_promotion_pause_and_promote_makes_it_live(production):
    env, state, tmp = production
    live = rollout_state(state)["status"]["stableRS"]
    out = script(env, "deploy.sh", "production", "--image", NEW_IMAGE, "--timeout", "2m")
    assert out.returncode == 0, out.stderr
    assert "awaiting promotion: rollout/devsecops-app" in out.stderr and "live is still revision 4" in out.stderr
    upgrade = next(c for c in calls(tmp) if c.startswith("helm upgrade"))
    assert not re.search(r"--wait|--atomic|--rollback-on-failure", upgrade), "Helm waits on what it cannot read"
    rollout = rollout_state(state)
    new = rollout["status"]["currentPodHash"]
    assert new != live and rollout["status"]["phase"] == "Paused", rollout["status"]
    assert rollout["status"]["blueGreen"]["activeSelector"] == live, "promoted without approval"
    assert records(tmp, "production") == {"previous-revision": "4\n", "awaiting-promotion": f"devsecops-app {new}\n"}
    # helm test ran against the paused new version, after the wait.
    recorded = calls(tmp)
    assert recorded.index(next(c for c in recorded if c.startswith("helm test"))) > max(
        i for i, c in enumerate(recorded) if c.startswith("kubectl get rollout"))
    # The pause holds: the controller never promotes by itself.
    for _ in range(5):
        assert script(env, "../k8s/scripts/rollout-status.py", "devsecops-app", "--namespace",
                      "devsecops-production", "--once", "--accept-promotion-pause").stdout == f"awaiting-promotion {new}\n"
    promoted = script(env, "promote.sh", "production", "--timeout", "1m")
    assert promoted.returncode == 0, promoted.stderr
    status = rollout_state(state)["status"]
    assert status["phase"] == "Healthy" and status["stableRS"] == new and status["blueGreen"]["activeSelector"] == new
    assert records(tmp, "production") == {}, "a finished promotion leaves nothing to roll back"
    assert calls(tmp)[-1].startswith("helm test devsecops-app --namespace devsecops-production")
    again = script(env, "promote.sh", "production")
    assert again.returncode == 0 and "nothing awaits promotion" in again.stderr


def test_a_failed_pre_promotion_analysis_fails_the_deploy_and_keeps_the_rollback_record(production):
    env, state, tmp = production
    out = script(dict(env, FAKE_ANALYSIS="Failed"), "deploy.sh", "production", "--image", NEW_IMAGE, "--timeout", "1m")
    assert out.returncode == 1, out.stderr
    assert "Degraded - RolloutAborted" in out.stderr
    assert not [c for c in calls(tmp) if c.startswith("helm test")]
    assert records(tmp, "production") == {"previous-revision": "4\n"}
    assert "scripts/rollback.sh production" in out.stderr


def test_promote_refuses_a_rollout_that_moved_on_and_changes_nothing(production):
    env, state, tmp = production
    assert script(env, "deploy.sh", "production", "--image", NEW_IMAGE, "--timeout", "2m").returncode == 0
    (tmp / "state" / "production.awaiting-promotion").write_text("devsecops-app 0123456789\n")
    before = rollout_state(state)
    out = script(env, "promote.sh", "production", "--timeout", "30s")
    assert out.returncode == 1 and "not awaiting the promotion of 0123456789" in out.stderr, out.stderr
    assert not [c for c in calls(tmp) if c.startswith("kubectl patch")]
    assert rollout_state(state)["status"]["pauseConditions"] == before["status"]["pauseConditions"]
    assert "previous-revision" in records(tmp, "production"), "the rollback record must stay"


def test_the_promotion_patch_is_refused_by_the_api_server_when_the_hash_changed(production):
    """The patch carries the hash as a JSON-patch test: a deploy that lands between promote's check
    and its patch makes the server refuse it instead of promoting the other version."""
    env, state, tmp = production
    assert script(env, "deploy.sh", "production", "--image", NEW_IMAGE, "--timeout", "2m").returncode == 0
    dry = script(env, "promote.sh", "production", "--dry-run")
    (patch,) = re.findall(r"-p '(\[.*\])'", dry.stdout)
    stale = patch.replace(rollout_state(state)["status"]["currentPodHash"], "0123456789")
    out = subprocess.run(["kubectl", "patch", "rollout", "devsecops-app", "--namespace", "devsecops-production",
                          "--subresource", "status", "--type", "json", "-p", stale], env=env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0 and "test failed at /status/currentPodHash" in out.stderr
    ok = subprocess.run(["kubectl", "patch", "rollout", "devsecops-app", "--namespace", "devsecops-production",
                         "--subresource", "status", "--type", "json", "-p", patch], env=env, capture_output=True,
                        text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr


def test_a_first_production_install_is_live_at_once_with_nothing_to_promote(tmp_path):
    env, state = fake_cluster(tmp_path)
    out = script(env, "deploy.sh", "production", "--image", NEW_IMAGE, "--timeout", "1m")
    assert out.returncode == 0, out.stderr
    assert rollout_state(state)["status"]["phase"] == "Healthy"
    assert records(tmp_path, "production") == {}
    promoted = script(env, "promote.sh", "production")
    assert promoted.returncode == 0 and "nothing awaits promotion" in promoted.stderr
    assert not [c for c in calls(tmp_path) if c.startswith("kubectl patch")]


def test_rolling_back_a_deploy_awaiting_promotion_returns_to_the_live_version(production):
    env, state, tmp = production
    live = rollout_state(state)["status"]["stableRS"]
    assert script(env, "deploy.sh", "production", "--image", NEW_IMAGE, "--timeout", "2m").returncode == 0
    out = script(env, "rollback.sh", "production")
    assert out.returncode == 0, out.stderr
    rollback = next(c for c in calls(tmp) if c.startswith("helm rollback"))
    assert rollback == "helm rollback devsecops-app 4 --namespace devsecops-production --timeout 10m"
    status = rollout_state(state)["status"]
    assert status["phase"] == "Healthy" and status["currentPodHash"] == live == status["blueGreen"]["activeSelector"]
    assert calls(tmp)[-1].startswith("kubectl get rollout devsecops-app"), "did not wait on the Rollout"
    assert records(tmp, "production") == {}
    assert script(env, "promote.sh", "production").returncode == 0, "nothing left to promote"


def test_the_deploy_budget_covers_the_whole_deploy(production):
    """--timeout bounds the upgrade, the wait and helm test together: each later step gets what is
    left, so the CI stage's own timeout can be set above it."""
    env, _, tmp = production
    started = time.monotonic()
    out = script(dict(env, FAKE_TICKS_TO_AVAILABLE="1000000"), "deploy.sh", "staging", "--image", NEW_IMAGE,
                 "--timeout", "3s")
    assert out.returncode != 0 and time.monotonic() - started < 20
    out = script(env, "deploy.sh", "development", "--image", NEW_IMAGE, "--timeout", "90s")
    assert out.returncode == 0, out.stderr
    (test,) = [c for c in calls(tmp) if c.startswith("helm test")]
    left = re.search(r"--timeout (\d+)s$", test)
    assert left and 0 < int(left.group(1)) <= 90, test


def claims(state):
    return {name: claim["phase"] for name, claim in json.loads(state.read_text())["claims"].items()}


def test_development_deploys_with_a_backup_claim_that_binds_on_first_use(tmp_path):
    """Development's backups claim is mounted by the backup CronJob alone: on a storage class that
    binds WaitForFirstConsumer (k3s's local-path) it stays Pending until the first backup runs, and
    Helm's own wait (legacy, as the watcher) would hold the deploy until its timeout on it."""
    env, state = fake_cluster(tmp_path)
    out = script(env, "deploy.sh", "development", "--image", NEW_IMAGE, "--timeout", "1m")
    assert out.returncode == 0, out.stderr
    assert claims(state) == {"devsecops-app-data": "Bound", "devsecops-app-backups": "Pending"}
    assert "persistentvolumeclaim/devsecops-app-backups: Pending until its first pod is scheduled" in out.stderr
    recorded = calls(tmp_path)
    assert "kubectl rollout status deployment/devsecops-app --namespace devsecops-development --timeout 60s" in \
        [re.sub(r"--timeout \d+s$", "--timeout 60s", c) for c in recorded], recorded
    assert not [c for c in recorded if c.startswith("kubectl get rollout")]
    assert records(tmp_path, "development") == {}
    # The same upgrade with Helm's legacy wait, as deploy.sh ran it before, fails on that claim.
    waited = subprocess.run(["helm", "upgrade", "--install", "--rollback-on-failure", "--wait=legacy", "--timeout", "1m",
                             "devsecops-app", os.path.join(ROOT, "k8s", "chart"), "--namespace", "devsecops-development",
                             "-f", os.path.join(ROOT, "k8s", "overlays", "development", "values.yaml")],
                            env=env, capture_output=True, text=True, timeout=60)
    assert waited.returncode != 0 and "devsecops-app-backups to be Bound" in waited.stderr


def test_a_claim_that_never_binds_fails_the_deploy_and_keeps_the_record(tmp_path):
    env, state = fake_cluster(tmp_path, manifest("development", LIVE_IMAGE), storage="broken")
    # Revision 4 ran with both claims bound; the new backups claim is a fresh one here.
    data = json.loads(state.read_text())
    data["claims"] = {"devsecops-app-data": {"phase": "Bound", "class": "broken"}}
    state.write_text(json.dumps(data))
    out = script(env, "deploy.sh", "development", "--image", NEW_IMAGE, "--timeout", "3s")
    assert out.returncode == 1, out.stderr
    assert "persistentvolumeclaim/devsecops-app-backups: still Pending (storage class broken binds Immediate)" in out.stderr
    assert not [c for c in calls(tmp_path) if c.startswith("helm test")]
    assert records(tmp_path, "development") == {"previous-revision": "4\n"}


def test_a_deployment_that_does_not_roll_out_fails_the_deploy(tmp_path):
    env, _ = fake_cluster(tmp_path, manifest("development", LIVE_IMAGE))
    out = script(dict(env, FAKE_DEPLOYMENT_FAILS="1"), "deploy.sh", "development", "--image", NEW_IMAGE)
    assert out.returncode == 1
    assert 'deployment "devsecops-app" exceeded its progress deadline' in out.stderr
    assert "live before it was revision 4, where scripts/rollback.sh development returns" in out.stderr
    assert not [c for c in calls(tmp_path) if c.startswith("helm test")]
    back = script(env, "rollback.sh", "development")
    assert back.returncode == 0, back.stderr
    assert "helm rollback devsecops-app 4 --namespace devsecops-development --timeout 10m" in calls(tmp_path)
    assert records(tmp_path, "development") == {}


def test_a_failed_promotion_is_rolled_back_to_the_version_live_before(production):
    """helm test fails after the promotion: the active Service already runs the new version and its
    old ReplicaSet is scaled down, so argo-rollouts pauses the return to the old template for
    promotion like any update. rollback.sh promotes that one, the version live before."""
    env, state, tmp = production
    live = rollout_state(state)["status"]["stableRS"]
    assert script(env, "deploy.sh", "production", "--image", NEW_IMAGE, "--timeout", "2m").returncode == 0
    new = rollout_state(state)["status"]["currentPodHash"]
    failed = script(dict(env, HELM_TEST_STATUS="1"), "promote.sh", "production", "--timeout", "1m")
    assert failed.returncode == 1 and "promotion failed: helm test failed" in failed.stderr, failed.stderr
    assert rollout_state(state)["status"]["stableRS"] == new, "the promotion itself went through"
    assert set(records(tmp, "production")) == {"previous-revision", "awaiting-promotion"}
    out = script(env, "rollback.sh", "production")
    assert out.returncode == 0, out.stderr
    assert f"promoting {live}, the template of revision 4, back to live" in out.stderr
    status = rollout_state(state)["status"]
    assert status["phase"] == "Healthy" and status["stableRS"] == live == status["blueGreen"]["activeSelector"]
    assert records(tmp, "production") == {}


BLUE_GREEN_WINDOW = ["--set", "rollouts.rollbackWindow.blueGreen=true"]
THIRD_IMAGE = "r.example/devsecops-app@sha256:" + "c" * 64


@pytest.fixture
def production_with_window(tmp_path):
    """Production as above on a cluster that turns the blue-green rollback window on (argo-rollouts
    1.10 or later)."""
    env, state = fake_cluster(tmp_path, manifest("production", LIVE_IMAGE, *BLUE_GREEN_WINDOW))
    return dict(env, FAKE_VALUES=" ".join(BLUE_GREEN_WINDOW)), state, tmp_path


def test_a_rollback_after_a_promotion_within_the_window_is_immediate(production_with_window):
    """With spec.rollbackWindow the return to the version live before the promotion skips the
    analysis and the pause: rollback.sh finds the Rollout Healthy on it and promotes nothing."""
    env, state, tmp = production_with_window
    live = rollout_state(state)["status"]["stableRS"]
    assert rollout_state(state)["spec"]["rollbackWindow"] == {"revisions": 1}
    assert script(env, "deploy.sh", "production", "--image", NEW_IMAGE, "--timeout", "2m").returncode == 0
    failed = script(dict(env, HELM_TEST_STATUS="1"), "promote.sh", "production", "--timeout", "1m")
    assert failed.returncode == 1 and rollout_state(state)["status"]["stableRS"] != live
    patches = len([c for c in calls(tmp) if c.startswith("kubectl patch")])
    out = script(env, "rollback.sh", "production")
    assert out.returncode == 0, out.stderr
    assert "promoting" not in out.stderr
    assert len([c for c in calls(tmp) if c.startswith("kubectl patch")]) == patches, "nothing promoted"
    status = rollout_state(state)["status"]
    assert status["phase"] == "Healthy" and status["stableRS"] == live == status["blueGreen"]["activeSelector"]
    assert not (status.get("blueGreen") or {}).get("prePromotionAnalysisRunStatus"), "no analysis on the way back"
    assert records(tmp, "production") == {}


def test_a_rollback_outside_the_window_is_promoted_by_rollback_sh(production_with_window):
    """A version deployed and discarded in between (its ReplicaSet stays) puts the earlier one
    outside a one-revision window: argo-rollouts pauses the return for promotion again, and
    rollback.sh promotes it as it does without the window."""
    env, state, tmp = production_with_window
    live = rollout_state(state)["status"]["stableRS"]
    assert script(env, "deploy.sh", "production", "--image", NEW_IMAGE, "--timeout", "2m").returncode == 0
    assert script(env, "rollback.sh", "production").returncode == 0
    assert rollout_state(state)["status"]["stableRS"] == live
    assert script(env, "deploy.sh", "production", "--image", THIRD_IMAGE, "--timeout", "2m").returncode == 0
    assert script(dict(env, HELM_TEST_STATUS="1"), "promote.sh", "production", "--timeout", "1m").returncode == 1
    out = script(env, "rollback.sh", "production")
    assert out.returncode == 0, out.stderr
    assert f"promoting {live}" in out.stderr
    status = rollout_state(state)["status"]
    assert status["phase"] == "Healthy" and status["stableRS"] == live == status["blueGreen"]["activeSelector"]


def test_rollback_never_promotes_the_version_it_rolls_back(production):
    env, state, tmp = production
    live = rollout_state(state)["status"]["stableRS"]
    assert script(env, "deploy.sh", "production", "--image", NEW_IMAGE, "--timeout", "2m").returncode == 0
    assert script(dict(env, HELM_TEST_STATUS="1"), "promote.sh", "production").returncode == 1
    # A record that names the hash the rollback would promote (as if the deploy had not changed it).
    (tmp / "state" / "production.awaiting-promotion").write_text(f"devsecops-app {live}\n")
    patches = len([c for c in calls(tmp) if c.startswith("kubectl patch")])
    out = script(env, "rollback.sh", "production")
    assert out.returncode == 1 and f"awaits the promotion of {live}, the version being rolled back" in out.stderr
    assert len([c for c in calls(tmp) if c.startswith("kubectl patch")]) == patches
    assert "previous-revision" in records(tmp, "production")


def test_deploy_without_a_rollout_waits_on_its_deployment(tmp_path):
    env, _ = fake_cluster(tmp_path, manifest("development", LIVE_IMAGE))
    out = script(env, "deploy.sh", "development", "--image", NEW_IMAGE)
    assert out.returncode == 0, out.stderr
    recorded = calls(tmp_path)
    assert not [c for c in recorded if c.startswith("kubectl get rollout")]
    (status,) = [i for i, c in enumerate(recorded) if c.startswith("kubectl rollout status deployment/devsecops-app")]
    assert recorded.index(next(c for c in recorded if c.startswith("helm test"))) > status
    assert records(tmp_path, "development") == {}


@pytest.mark.parametrize("env_name, service", [("production", "devsecops-app-preview"),
                                               ("staging", "devsecops-app"), ("development", "devsecops-app")])
def test_helm_test_checks_the_version_being_deployed(env_name, service):
    """On blue-green the new version is reachable only through the preview Service until it is
    promoted; after the promotion the preview Service follows the active version."""
    docs = [d for d in yaml.safe_load_all(manifest(env_name, NEW_IMAGE)) if d]
    (test,) = [d for d in docs if d["kind"] == "Pod" and
               d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    urls = {c["args"][1] for c in test["spec"]["containers"]}
    assert urls == {f"http://{service}:80/health", f"http://{service}:80/ready"}
    assert service in {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}


def test_a_rollout_waiting_for_promotion_past_the_timeout_says_so(production):
    env, state, tmp = production
    assert script(env, "deploy.sh", "production", "--image", NEW_IMAGE, "--timeout", "2m").returncode == 0
    out = script(env, "../k8s/scripts/rollout-status.py", "devsecops-app", "--namespace", "devsecops-production",
                 "--timeout", "1s")
    assert out.returncode == 1
    assert "waiting for promotion: scripts/promote.sh" in out.stderr


@pytest.mark.parametrize("args", [["qa"], [], ["production", "--timeout", "soon"], ["production", "--bogus"]])
def test_promote_refuses_bad_arguments(tmp_path, args):
    env, _ = fake_cluster(tmp_path)
    out = script(env, "promote.sh", *args)
    assert out.returncode == 2, (args, out.stderr)
    assert not calls(tmp_path)
