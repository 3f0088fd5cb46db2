"""The MicroK8s setup and secret rotation scripts, run against stub `microk8s`/`kubectl` commands that
record their arguments: dry runs change nothing, real runs are idempotent, tokens never reach argv."""

import os
import shutil
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
if [ "$(basename "$0")" = sudo ]; then
  SUDO_USED=1 exec "$@"
fi
if [ "$(basename "$0")" = id ]; then
  case "$1" in -u) echo 1000 ;; -un) echo ubuntu ;; -nG) echo "ubuntu adm" ;; esac
  exit 0
fi
if [ "$(basename "$0")" = getent ]; then
  echo "microk8s:x:998:"
  exit 0
fi
if [ "$(basename "$0")" = microk8s ] && [ -n "${FRESH_HOST:-}" ] && [ -z "${SUDO_USED:-}" ]; then
  # What MicroK8s answers a user who is not (yet, in this session) in the microk8s group.
  echo "Insufficient permissions to access MicroK8s." >&2
  exit 1
fi
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
      # The ingress addon's release: Traefik on MicroK8s 1.35 and later, none before (NGINX).
      if [ "$1" = "list" ]; then cat "$INGRESS_RELEASES"; fi
      if [ "$1" = "repo" ] && [ "$2" = "add" ]; then echo "$3 $4" >> "$REPOS"; fi
      # The chart renders for real: the script decides from the render which operators it needs.
      if [ "$1" = "template" ]; then exec "$REAL_HELM" "$@"; fi
      if [ "$1" = "upgrade" ]; then
        for arg in "$@"; do
          case "$arg" in *alertmanager-values.yaml) cp "$arg" "$STUB_DIR/" ;; esac
        done
      fi ;;
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
    for name in ("microk8s", "kubectl", "sudo", "snap", "usermod"):
        path = bin_dir / name
        path.write_text(STUB)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    releases = tmp_path / "ingress-releases.json"
    releases.write_text('[{"name":"traefik","namespace":"ingress","revision":"1","status":"deployed",'
                        '"chart":"traefik-39.0.8","app_version":"v3.6.13"}]\n')
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", STUB_LOG=str(tmp_path / "calls"),
               ENABLED=str(tmp_path / "enabled"), REPOS=str(tmp_path / "repos"),
               SECRET_EXISTS=str(tmp_path / "secret"), REAL_HELM=shutil.which("helm"), STUB_DIR=str(tmp_path),
               INGRESS_RELEASES=str(releases))
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


def test_setup_on_a_fresh_host_joins_the_group_and_reaches_microk8s_through_sudo(stubs, tmp_path):
    """Right after `snap install`, the user is not in the microk8s group in this session: every
    microk8s call without sudo fails with "Insufficient permissions"."""
    env, log = stubs
    for name in ("id", "getent"):
        path = tmp_path / "bin" / name
        path.write_text(STUB)
        path.chmod(0o755)
    env = dict(env, FRESH_HOST="1")
    out = subprocess.run([SETUP], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    recorded = calls(log)
    assert "usermod -a -G microk8s ubuntu" in recorded
    direct = [c for c in recorded if c.startswith("microk8s ")]
    through_sudo = [c for c in recorded if c.startswith("sudo microk8s ")]
    assert through_sudo and len(direct) == len(through_sudo), "a microk8s call without sudo"


def dry_run_plan(stubs, env_name):
    env, _ = stubs
    out = subprocess.run([SETUP, "--dry-run", "--env", env_name], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if line.startswith("would run:")]


@pytest.mark.parametrize("env_name,operators", [("development", set()),
                                                ("staging", {"argo-rollouts", "cnpg", "prometheus-adapter"}),
                                                ("production", {"argo-rollouts"})])
def test_setup_installs_the_operators_the_environment_needs_before_the_service(stubs, env_name, operators):
    plan = dry_run_plan(stubs, env_name)
    releases = [line.split("upgrade --install ")[1].split()[0] for line in plan if "upgrade --install" in line]
    assert {"argo-rollouts", "cnpg", "prometheus-adapter"} & set(releases) == operators, releases
    if "prometheus-adapter" in operators:
        (adapter,) = [line for line in plan if "upgrade --install prometheus-adapter" in line]
        assert adapter.split()[-1].endswith("k8s/platform/prometheus-adapter-values.yaml"), adapter
    for operator in operators:
        assert releases.index(operator) < releases.index("devsecops-app"), releases


def microk8s_render(env_name):
    from renders import OVERLAYS, documents, helm_template
    out = helm_template(["-f", os.path.join(OVERLAYS, env_name, "values.yaml"),
                         "-f", os.path.join(PLATFORM, "devsecops-app-microk8s.yaml")])
    assert out.returncode == 0, out.stderr
    return documents(out.stdout)


def test_the_analysis_asks_the_prometheus_this_path_installs():
    grafana = yaml.safe_load(open(os.path.join(PLATFORM, "grafana-values.yaml")))
    prometheus_url = next(d["url"] for d in grafana["datasources"]["datasources.yaml"]["datasources"]
                          if d["type"] == "prometheus")
    for env_name in ("staging", "production"):
        template = next(d for d in microk8s_render(env_name) if d["kind"] == "AnalysisTemplate")
        address = template["spec"]["metrics"][0]["provider"]["prometheus"]["address"]
        # prometheus-community/prometheus names its Service <release>-server, port 80.
        assert address.split("//")[1].split(".")[0:2] == ["prometheus-server", "monitoring"], address
        assert address.split("//")[1].split(".")[:2] == prometheus_url.split("//")[1].split(".")[:2]


def test_dashboards_are_delivered_once_not_by_each_environment(stubs):
    plan = dry_run_plan(stubs, "development")
    assert any("apply -k" in line and "observability/grafana" in line and "-n monitoring" in line for line in plan)
    for env_name in ("development", "staging", "production"):
        docs = microk8s_render(env_name)
        assert not [d for d in docs if d["kind"] == "ConfigMap" and "grafana_dashboard" in
                    d["metadata"].get("labels", {})], f"{env_name} ships dashboards in its release"


def test_setup_deploys_the_projects_alertmanager_routes(stubs, tmp_path):
    env, _ = stubs
    out = subprocess.run([SETUP, "--skip-ci"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    values = yaml.safe_load((tmp_path / "alertmanager-values.yaml").read_text())
    with open(os.path.join(ROOT, "observability", "alertmanager", "alertmanager.yml")) as f:
        assert values["alertmanager"]["config"] == yaml.safe_load(f)


def test_alloy_gets_a_writable_storage_path_on_a_read_only_root():
    values = yaml.safe_load(open(os.path.join(PLATFORM, "alloy-values.yaml")))
    assert values["alloy"]["securityContext"]["readOnlyRootFilesystem"] is True
    storage = values["alloy"].get("storagePath", "/tmp/alloy")  # the chart's default
    mounts = {m["mountPath"]: m["name"] for m in values["alloy"].get("mounts", {}).get("extra", [])}
    assert storage in mounts, f"nothing writable at {storage}"
    volumes = {v["name"]: v for v in values["controller"].get("volumes", {}).get("extra", [])}
    assert "emptyDir" in volumes[mounts[storage]]


def test_setup_puts_the_service_limits_on_the_ingress_addons_traefik(stubs):
    """The addon's own release, upgraded in place: same chart version, its values kept, the shared
    Traefik values added; before the platform's releases, whose ingresses it then serves."""
    plan = dry_run_plan(stubs, "development")
    (upgrade,) = [line for line in plan if "upgrade traefik " in line]
    words = upgrade.split()
    assert words[words.index("--namespace") + 1] == "ingress" and "--reuse-values" in words
    assert words[words.index("--version") + 1] == "39.0.8"
    assert words[-3:] == [os.path.join(PLATFORM, "traefik-values.json"), "-f",
                          os.path.join(PLATFORM, "traefik-service-values.yaml")]
    first_release = next(i for i, line in enumerate(plan) if "upgrade --install" in line)
    assert plan.index(upgrade) < first_release


def test_setup_refuses_an_ingress_addon_without_traefik(stubs, tmp_path):
    """MicroK8s before 1.35 runs NGINX: the limits cannot be applied, and setup says so and stops
    before installing the platform."""
    env, log = stubs
    (tmp_path / "ingress-releases.json").write_text("[]\n")
    out = subprocess.run([SETUP, "--skip-ci"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "MicroK8s before 1.35 runs NGINX" in out.stderr, out.stderr
    assert not [c for c in calls(log) if "upgrade --install" in c]
