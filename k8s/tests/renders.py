"""Every configuration the chart is rendered with, in one place: the chart tests (test_chart.py) check
them statically and tests/render runs each of them in Docker. helm and kubectl on PATH."""

import os
import subprocess
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# DEVSECOPS_CHART points the checks at another copy of the chart (an older revision, to show a check
# fails there).
CHART = os.environ.get("DEVSECOPS_CHART") or os.path.join(ROOT, "k8s", "chart")
OVERLAYS = os.path.join(ROOT, "k8s", "overlays")
PLATFORM = os.path.join(ROOT, "k8s", "platform")
SHIM = os.path.join(ROOT, "k8s", "scripts", "helm-for-kustomize.sh")
ENVIRONMENTS = ["development", "staging", "production"]
RELEASE = "devsecops-app"
NAMESPACE = "apps"

# Value sets that between them turn every template and branch on.
VALUE_SETS = {
    "default": [],
    "sqlite-persistent-ingress": ["--set", "database.sqlite.persistence.enabled=true", "--set", "ingress.enabled=true",
                                  "--set", "database.sqlite.backup.enabled=true", "--set", "verticalAutoscaling.enabled=true"],
    "postgres-external-monitoring": ["--set", "database.type=postgres", "--set", "database.postgres.existingSecret=db",
                                     "--set", "database.postgres.cidr=10.0.0.0/8", "--set", "replicaCount=3",
                                     "--set", "metrics.serviceMonitor.enabled=true",
                                     "--set", "metrics.prometheusRule.enabled=true",
                                     "--set", "metrics.dashboards.enabled=true"],
    "cloudnativepg-canary-hpa": ["--set", "database.type=postgres", "--set", "database.cloudnativepg.enabled=true",
                                 "--set", "rollouts.enabled=true", "--set", "autoscaling.enabled=true",
                                 "--set", "autoscaling.requestRate.enabled=true", "--set", "verticalAutoscaling.enabled=true",
                                 "--set", "database.cloudnativepg.backup.enabled=true",
                                 "--set", "database.cloudnativepg.backup.objectStore.destinationPath=s3://backups/devsecops",
                                 "--set", "database.cloudnativepg.backup.objectStore.s3CredentialsSecret=backup-s3"],
    # A point-in-time restore into a new cluster, as k8s/scripts/restore-cnpg.sh sets it.
    "cloudnativepg-restored": ["--set", "database.type=postgres", "--set", "database.cloudnativepg.enabled=true",
                               "--set", "database.cloudnativepg.clusterName=devsecops-app-db-r1",
                               "--set", "database.cloudnativepg.backup.enabled=true",
                               "--set", "database.cloudnativepg.backup.objectStore.destinationPath=s3://backups/devsecops",
                               "--set", "database.cloudnativepg.recovery.enabled=true",
                               "--set", "database.cloudnativepg.recovery.sourceCluster=devsecops-app-db",
                               "--set", "database.cloudnativepg.recovery.targetTime=2026-11-20T10:00:00Z"],
    "blue-green": ["--set", "database.type=postgres", "--set", "database.postgres.existingSecret=db",
                   "--set", "rollouts.enabled=true", "--set", "rollouts.strategy=blueGreen", "--set", "replicaCount=2",
                   "--set", "auth.existingSecret=token"],
}
for env in ENVIRONMENTS:
    VALUE_SETS[env] = ["-f", os.path.join(OVERLAYS, env, "values.yaml")]


def appliance_values():
    """The values nixos-modules/appliance gives the chart: plain Nix data, evaluated without nixpkgs."""
    expr = (f"import {ROOT}/nixos-modules/appliance/chart-values.nix {{ hostName = \"devsecops.appliance.internal\"; "
            "imageRepository = \"127.0.0.1:5000/devsecops-app\"; imageTag = \"0.1.0\"; "
            "authSecret = \"devsecops-app-auth\"; }")
    out = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", "--expr", expr],
                         capture_output=True, text=True, check=True)
    path = os.path.join(tempfile.mkdtemp(prefix="appliance-values-"), "values.json")
    with open(path, "w") as f:
        f.write(out.stdout)
    return path


# The k3s appliance (nixos-modules/appliance) renders the chart with these values.
VALUE_SETS["appliance"] = ["-f", appliance_values()]
# The MicroK8s path (k8s/microk8s/setup.sh --env ENV) adds its platform file to an environment's
# values, for each of the three environments.
MICROK8S = [f"microk8s-{env}" for env in ENVIRONMENTS]
for env in ENVIRONMENTS:
    VALUE_SETS[f"microk8s-{env}"] = ["-f", os.path.join(OVERLAYS, env, "values.yaml"),
                                     "-f", os.path.join(PLATFORM, "devsecops-app-microk8s.yaml")]

# The load test Job (loadTest, a helm test hook running the loadtest image): checked statically like
# the value sets above (test_chart.py: Kubernetes schemas, Pod Security, checkov) and by
# test_loadtest.py, but neither run by tests/render, which runs the service's image only, nor kept
# as snapshots.
LOADTEST_VALUE_SETS = {
    "loadtest": ["--set", "loadTest.enabled=true"],
    # The preview Service, read-only weights (no token), an existing Secret.
    "loadtest-blue-green": [*VALUE_SETS["blue-green"], "--set", "loadTest.enabled=true", "--set", "loadTest.weights=3:0:1"],
    # Production's values, as a deploy that installs the load test renders them.
    "loadtest-production": [*VALUE_SETS["production"], "--set", "loadTest.enabled=true"],
    # Through the ingress, pinned by digest, with every list value.
    "loadtest-ingress": ["--set", "loadTest.enabled=true", "--set", "ingress.enabled=true",
                         "--set", "loadTest.host=https://devsecops-app.example.com",
                         "--set", "loadTest.image.digest=sha256:" + "c" * 64,
                         "--set", "loadTest.thresholds={p99<1s}", "--set", "loadTest.extraArgs={--,--no-reset-metrics}",
                         "--set", "imagePullSecrets[0].name=registry"],
}


def run(cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


# A fixed token keeps snapshots stable; runs leave it out so the chart makes its own, as on install.
FIXED_TOKEN = ["--set", "auth.token=t0ken-for-rendering"]


def helm_template(args, release=RELEASE, token=FIXED_TOKEN):
    return run(["helm", "template", release, CHART, "--namespace", NAMESPACE, *token, *args])


def kustomize(env):
    out = run(["kubectl", "kustomize", "--enable-helm", "--helm-command", SHIM, os.path.join(OVERLAYS, env)])
    assert out.returncode == 0, f"{env}: {out.stderr}"
    return documents(out.stdout)


def documents(text):
    return [d for d in yaml.safe_load_all(text) if d]
