"""The MicroK8s setup and secret rotation scripts, run against stub `microk8s`/`kubectl` commands that
record their arguments: dry runs change nothing, real runs are idempotent, tokens never reach argv."""

import os
import stat
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETUP = os.path.join(ROOT, "k8s", "microk8s", "setup.sh")
ROTATE = os.path.join(ROOT, "k8s", "scripts", "rotate-secret.sh")
PLATFORM = os.path.join(ROOT, "k8s", "platform")

STUB = """#!/usr/bin/env bash
# Records each call; answers `status` from the ENABLED file and `enable X` by appending to it.
echo "$(basename "$0") $*" >> "$STUB_LOG"
if [ "$(basename "$0")" = microk8s ]; then
  case "$1" in
    status)
      if [ "${2:-}" = "--format" ]; then
        for a in dns ingress metrics-server hostpath-storage registry; do
          if grep -qx "$a" "$ENABLED" 2>/dev/null; then echo "core/$a: enabled"; else echo "core/$a: disabled"; fi
        done
      fi ;;
    enable) echo "$2" >> "$ENABLED" ;;
    kubectl)
      shift
      case "$*" in
        *"-o yaml"*) echo "apiVersion: v1" ;;
        *"get secret"*) [ -f "$SECRET_EXISTS" ] || exit 1 ;;
        *"create secret"*) touch "$SECRET_EXISTS" ;;
        *"apply -f -"*) cat > /dev/null ;;
      esac ;;
    helm3)
      shift
      if [ "$1" = "repo" ] && [ "$2" = "list" ]; then cat "$REPOS" 2>/dev/null; fi
      if [ "$1" = "repo" ] && [ "$2" = "add" ]; then echo "$3 $4" >> "$REPOS"; fi ;;
  esac
fi
if [ "$(basename "$0")" = kubectl ]; then
  case "$*" in
    *"/dev/stdin"*) cat > /dev/null; echo "apiVersion: v1" ;;
    *"-o yaml"*) echo "apiVersion: v1" ;;
    *"apply -f -"*) cat > /dev/null ;;
  esac
fi
exit 0
"""


@pytest.fixture
def stubs(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("microk8s", "kubectl", "sudo", "snap"):
        path = bin_dir / name
        path.write_text(STUB)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", STUB_LOG=str(tmp_path / "calls"),
               ENABLED=str(tmp_path / "enabled"), REPOS=str(tmp_path / "repos"),
               SECRET_EXISTS=str(tmp_path / "secret"))
    return env, tmp_path / "calls"


def calls(log):
    return log.read_text().splitlines() if log.exists() else []


def test_setup_dry_run_changes_nothing_and_prints_the_plan(stubs):
    env, log = stubs
    out = subprocess.run([SETUP, "--dry-run"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    changing = [c for c in calls(log) if " enable " in f" {c} " or "upgrade" in c or "repo add" in c
                or "create" in c or "apply" in c]
    assert changing == [], changing
    for addon in ("dns", "ingress", "metrics-server", "hostpath-storage", "registry"):
        assert f"microk8s enable {addon}" in out.stdout
    for release in ("prometheus", "loki", "alloy", "grafana", "jenkins", "sonarqube", "devsecops-app"):
        assert f"upgrade --install {release} " in out.stdout, release
    assert "--set-file alloy.configMap.content=" in out.stdout
    assert "REDACTED" in out.stdout


def test_setup_is_idempotent(stubs):
    env, log = stubs
    first = subprocess.run([SETUP], env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    enabled_first = [c for c in calls(log) if c.startswith("microk8s enable")]
    assert len(enabled_first) == 5
    assert sum(1 for c in calls(log) if "create secret" in c) == 1
    log.write_text("")
    second = subprocess.run([SETUP], env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    again = calls(log)
    assert not [c for c in again if c.startswith("microk8s enable")], "addons enabled twice"
    assert not [c for c in again if "repo add" in c], "repositories added twice"
    assert not [c for c in again if "create secret" in c], "the token was replaced on a re-run"
    assert [c for c in again if "upgrade --install devsecops-app" in c], "helm upgrade --install is the update path"


def test_setup_refuses_unknown_options(stubs):
    env, _ = stubs
    for args in (["--env", "qa"], ["--bogus"]):
        out = subprocess.run([SETUP, *args], env=env, capture_output=True, text=True, timeout=30)
        assert out.returncode == 2, args


def test_rotation_restarts_the_workload_and_keeps_the_token_out_of_argv(stubs):
    env, log = stubs
    out = subprocess.run([ROTATE, "--namespace", "apps"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    recorded = calls(log)
    assert any("create secret generic devsecops-app-auth --from-file=api-token=/dev/stdin" in c for c in recorded)
    assert any("rollout restart deployment/devsecops-app" in c for c in recorded)
    assert any("rollout status deployment/devsecops-app" in c for c in recorded)
    assert not any("--from-literal" in c for c in recorded), "token on a command line"
    rollout = subprocess.run([ROTATE, "--workload", "rollout/devsecops-app"], env=env, capture_output=True,
                             text=True, timeout=30)
    assert rollout.returncode == 0 and any("patch rollout/devsecops-app" in c for c in calls(log))
    log.write_text("")
    dry = subprocess.run([ROTATE, "--dry-run"], env=env, capture_output=True, text=True, timeout=30)
    assert dry.returncode == 0 and calls(log) == [] and "would run" in dry.stdout


def test_platform_values_agree_with_observability():
    grafana = yaml.safe_load(open(os.path.join(PLATFORM, "grafana-values.yaml")))
    uids = {d["uid"]: d["type"] for d in grafana["datasources"]["datasources.yaml"]["datasources"]}
    provisioned = yaml.safe_load(open(os.path.join(ROOT, "observability", "grafana", "provisioning", "datasources",
                                                   "datasources.yaml")))
    assert uids == {d["uid"]: d["type"] for d in provisioned["datasources"]}
    assert grafana["sidecar"]["dashboards"]["label"] == "grafana_dashboard"
    loki = yaml.safe_load(open(os.path.join(PLATFORM, "loki-values.yaml")))["loki"]
    reference = yaml.safe_load(open(os.path.join(ROOT, "observability", "loki", "loki.yaml")))
    assert loki["schemaConfig"] == reference["schema_config"]
    for key in ("retention_period", "allow_structured_metadata"):
        assert loki["limits_config"][key] == reference["limits_config"][key], key
    jenkins = yaml.safe_load(open(os.path.join(PLATFORM, "jenkins-values.yaml")))
    assert {"configuration-as-code", "kubernetes", "workflow-aggregator", "sonar"} <= set(
        jenkins["controller"]["installPlugins"])
    for name in os.listdir(PLATFORM):
        text = open(os.path.join(PLATFORM, name)).read()
        assert "password:" not in text.replace('password: "${', ""), f"{name}: a literal password"
