"""The Helm chart, its overlays and Argo CD applications, checked offline: lint, render, Kubernetes
schemas (kubernetes-validate), CRD schemas, Pod Security "restricted", the values schema, wiring to
observability/, and reviewed snapshots. Run by scripts/test.sh (helm and kubectl on PATH).

    UPDATE_SNAPSHOTS=1 python3 -m pytest k8s/tests   # after a reviewed change to the manifests
"""

import copy
import glob
import json
import os
import re
import subprocess

import jsonschema
import pytest
import yaml

import crd_subsets
from renders import (CHART, ENVIRONMENTS, LOADTEST_VALUE_SETS, OVERLAYS, ROOT, VALUE_SETS, documents, helm_template,
                     kustomize, run)

SNAPSHOTS = os.path.join(ROOT, "k8s", "tests", "snapshots")
SCHEMAS = os.environ.get("DEVSECOPS_SCHEMAS", os.path.join(os.path.dirname(ROOT), "shared", "schemas"))


@pytest.fixture(scope="module")
def rendered():
    result = {}
    for name, args in VALUE_SETS.items():
        out = helm_template(args)
        assert out.returncode == 0, f"{name}: {out.stderr}"
        result[name] = documents(out.stdout)
    return result


@pytest.fixture(scope="module")
def kustomized():
    return {env: kustomize(env) for env in ENVIRONMENTS}


@pytest.fixture(scope="module")
def loadtest_rendered():
    """The value sets with the load test Job: the whole-chart checks below take them too."""
    result = {}
    for name, args in LOADTEST_VALUE_SETS.items():
        out = helm_template(args)
        assert out.returncode == 0, f"{name}: {out.stderr}"
        result[name] = documents(out.stdout)
    assert all(any(d["kind"] == "Job" for d in docs) for docs in result.values())
    return result


def all_rendered(rendered, kustomized, *more):
    extra = [item for renders in more for item in renders.items()]
    for name, docs in list(rendered.items()) + extra + [(f"kustomize-{k}", v) for k, v in kustomized.items()]:
        for doc in docs:
            yield name, doc


def test_helm_lint_strict_for_default_and_every_environment():
    for args in [[]] + [["-f", os.path.join(OVERLAYS, env, "values.yaml")] for env in ENVIRONMENTS]:
        out = run(["helm", "lint", "--strict", CHART, *args])
        assert out.returncode == 0, f"{args}: {out.stdout}{out.stderr}"


def test_default_values_render_without_any_setting():
    out = run(["helm", "template", "x", CHART])
    assert out.returncode == 0, out.stderr
    kinds = sorted(d["kind"] for d in documents(out.stdout))
    assert "Deployment" in kinds and "Secret" in kinds


def test_overlays_render_namespaces_that_enforce_restricted(kustomized):
    for env, docs in kustomized.items():
        namespaces = [d for d in docs if d["kind"] == "Namespace"]
        assert len(namespaces) == 1, env
        assert namespaces[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        for doc in docs:
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == f"devsecops-{env}", (env, doc["kind"])
        assert not [d for d in docs if d["kind"] == "Pod"], "hooks must not be synced by GitOps"


def is_custom(doc):
    """A custom resource: a group with a dot outside Kubernetes' own *.k8s.io APIs, or one of the
    CRD-defined kinds in a k8s.io group (the VerticalPodAutoscaler's autoscaling.k8s.io)."""
    group = doc["apiVersion"].split("/")[0]
    return (doc["apiVersion"], doc["kind"]) in crd_subsets.SCHEMAS or ("." in group and not group.endswith("k8s.io"))


def kubernetes_validate_versions():
    """1.30 (the chart's minimum) and the newest schema the installed kubernetes-validate knows."""
    help_text = run(["kubernetes-validate", "--help"]).stdout
    newest = re.search(r"Defaults to\s+([0-9.]+)", help_text).group(1).rstrip(".")
    return ["1.30.0", newest]


def test_kubernetes_schemas_strict_for_1_30_and_the_newest(rendered, kustomized, loadtest_rendered, tmp_path):
    builtin = [(name, d) for name, d in all_rendered(rendered, kustomized, loadtest_rendered) if not is_custom(d)]
    path = tmp_path / "builtin.yaml"
    path.write_text(yaml.safe_dump_all([d for _, d in builtin]))
    for version in kubernetes_validate_versions():
        out = run(["kubernetes-validate", "--strict", "--quiet", "-k", version, str(path)])
        assert out.returncode == 0, f"Kubernetes {version}: {out.stdout}{out.stderr}"


def strict(schema):
    """CRD schemas leave additionalProperties open; close them so a misspelt field fails."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields") \
                    and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def crd_schemas():
    schemas = {}
    for path in glob.glob(os.path.join(SCHEMAS, "crds", "*", "*.yaml")):
        with open(path) as f:
            crd = yaml.safe_load(f)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[(f"{group}/{version['name']}", kind)] = strict(version["schema"]["openAPIV3Schema"])
    # CRDs not published in the shared schemas: the fields the chart uses, as upstream types them.
    assert not set(crd_subsets.SCHEMAS) & set(schemas), "a published CRD is now available: use it instead"
    schemas.update(crd_subsets.SCHEMAS)
    return schemas


def test_custom_resources_match_their_published_crd_schemas(rendered, kustomized):
    schemas = crd_schemas()
    seen = set()
    for name, doc in all_rendered(rendered, kustomized):
        key = (doc["apiVersion"], doc["kind"])
        if is_custom(doc):
            assert key in schemas, f"{name}: no schema for {key}"
            errors = [f"{list(e.absolute_path)}: {e.message}"
                      for e in jsonschema.Draft7Validator(schemas[key]).iter_errors(doc)]
            assert not errors, f"{name} {doc['kind']}: {errors[:5]}"
            seen.add(doc["kind"])
    for path in glob.glob(os.path.join(ROOT, "k8s", "argocd", "*.yaml")):
        with open(path) as f:
            app = yaml.safe_load(f)
        errors = [e.message for e in jsonschema.Draft7Validator(schemas[("argoproj.io/v1alpha1", "Application")])
                  .iter_errors(app)]
        assert not errors, f"{path}: {errors[:5]}"
        seen.add("Application")
    assert seen >= {"ServiceMonitor", "PrometheusRule", "Rollout", "AnalysisTemplate", "Cluster", "Application",
                    "VerticalPodAutoscaler", "ScheduledBackup", "ObjectStore", "Middleware"}


def pod_specs(docs):
    for doc in docs:
        if doc["kind"] in ("Deployment", "Rollout"):
            yield doc["kind"], doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield "CronJob", doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif doc["kind"] == "Job":
            yield "Job", doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield "Pod", doc["spec"]


ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
                   "secret"}


def assert_restricted(where, spec):
    """Pod Security "restricted" (and the chart's own rules: read-only root, requests and limits) for
    one pod spec."""
    pod_sc = spec.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(flag), f"{where}: {flag}"
    for volume in spec.get("volumes", []):
        assert set(volume) - {"name"} <= ALLOWED_VOLUMES, f"{where}: volume {volume}"
    assert pod_sc.get("seccompProfile", {}).get("type") in ("RuntimeDefault", "Localhost"), where
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        sc = container.get("securityContext", {})
        cwhere = f"{where} {container['name']}"
        assert sc.get("allowPrivilegeEscalation") is False, cwhere
        assert not sc.get("privileged"), cwhere
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, cwhere
        assert sc.get("runAsUser", pod_sc.get("runAsUser")) == 10001, cwhere
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], cwhere
        assert set(sc.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}, cwhere
        assert sc.get("readOnlyRootFilesystem") is True, cwhere
        assert not any(p.get("hostPort") for p in container.get("ports", [])), cwhere
        resources = container.get("resources", {})
        assert resources.get("requests") and resources.get("limits"), f"{cwhere}: resources"


def test_every_pod_meets_pod_security_restricted(rendered, kustomized, loadtest_rendered):
    checked = set()
    for name, docs in list(rendered.items()) + list(loadtest_rendered.items()) + list(kustomized.items()):
        for kind, spec in pod_specs(docs):
            checked.add((name, kind))
            assert_restricted(f"{name} {kind}", spec)
    assert len(checked) >= 10
    assert {kind for _, kind in checked} == {"Deployment", "Rollout", "CronJob", "Pod", "Job"}


def test_values_schema_rejects_wrong_values():
    for bad in (["--set", "replicaCount=-1"], ["--set", "app.port=80"], ["--set", "unknownKey=1"],
                ["--set", "image.digest=latest"], ["--set", "database.type=mysql"],
                ["--set", "app.logLevel=loud"], ["--set", "rollouts.strategy=linear"],
                ["--set", "rollouts.analysis.successRate=2"], ["--set", "ingress.host=Not A Host"],
                ["--set", "app.environment=production", "--set", "app.debug=true"],
                ["--set", "shutdown.drainTimeoutSeconds=0"], ["--set", "resources.limits.memory=lots"],
                ["--set", "app.forwardedHops=0"], ["--set", "app.forwardedHops=17"],
                ["--set-string", "app.forwardedHops=2"]):
        out = helm_template(bad)
        assert out.returncode != 0, f"accepted {bad}"
        assert "schema" in out.stderr or "values don't meet" in out.stderr, f"{bad}: {out.stderr}"


def integer_paths(schema, path=()):
    """Every value the values schema types as an integer, with the largest value it allows."""
    types = schema.get("type")
    if types == "integer" or (isinstance(types, list) and "integer" in types):
        yield path, schema.get("maximum", 31536000)
    for key, sub in schema.get("properties", {}).items():
        yield from integer_paths(sub, path + (key,))
    for sub in schema.get("oneOf", []) + schema.get("anyOf", []):
        yield from integer_paths(sub, path)


def scientific_numbers(node, where=""):
    """Numbers written as 3.1536e+07, or floats where an integer was given: Helm prints values from
    files (float64 after sigs.k8s.io/yaml) with %v, which switches to exponent form at 1,000,000."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from scientific_numbers(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from scientific_numbers(value, f"{where}[{i}]")
    elif isinstance(node, float) or (isinstance(node, str) and re.fullmatch(r"[0-9.]+e[+-]?[0-9]+", node)):
        yield f"{where}: {node!r}"


def test_integers_from_values_files_render_as_integers(tmp_path):
    """helm/helm#12195: `quote` or `{{ }}` of an integer read from a values file prints 31536000 as
    3.1536e+07, which the service refuses and the API server cannot decode as an integer. Every
    integer of the schema gets a value of a million or more where the schema allows, from a file."""
    with open(os.path.join(CHART, "values.schema.json")) as f:
        schema = json.load(f)
    values = {}
    for path, value in integer_paths(schema):
        node = values
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    values["replicaCount"] = 1
    if "metricsPort" in values["app"]:
        values["app"]["metricsPort"] = 65534
    values.setdefault("podDisruptionBudget", {})["maxUnavailable"] = 2000000
    seen = 0
    for strategy in ("canary", "blueGreen"):
        path = tmp_path / f"{strategy}.yaml"
        path.write_text(yaml.safe_dump(values))
        out = helm_template(["-f", str(path), "--set", "database.type=postgres",
                             "--set", "database.cloudnativepg.enabled=true", "--set", "rollouts.enabled=true",
                             "--set", f"rollouts.strategy={strategy}", "--set", "autoscaling.enabled=true",
                             "--set", "ingress.enabled=true", "--set", "metrics.serviceMonitor.enabled=true",
                             "--set", "loadTest.enabled=true"])
        assert out.returncode == 0, out.stderr
        for doc in documents(out.stdout):
            bad = list(scientific_numbers(doc, f"{doc['kind']}/{doc['metadata']['name']}"))
            assert not bad, bad
            seen += 1
    assert seen > 20


def test_refuses_combinations_that_cannot_work():
    cases = {
        "supports one replica only": ["--set", "replicaCount=2"],
        "autoscaling.enabled=false": ["--set", "database.type=sqlite", "--set", "autoscaling.enabled=true"],
        "needs database.postgres.existingSecret": ["--set", "database.type=postgres"],
        "rollouts need two versions": ["--set", "rollouts.enabled=true"],
    }
    for message, args in cases.items():
        out = helm_template(args)
        assert out.returncode != 0 and message in out.stderr, f"{args}: {out.stderr}"


def deployment(docs):
    return next(d for d in docs if d["kind"] in ("Deployment", "Rollout"))


def test_secret_or_config_change_rolls_the_pods():
    def annotations(*args):
        out = helm_template(list(args))
        assert out.returncode == 0, out.stderr
        return deployment(documents(out.stdout))["spec"]["template"]["metadata"]["annotations"]

    base = annotations()
    rotated = annotations("--set", "auth.token=another-token")
    reconfigured = annotations("--set", "app.logLevel=debug")
    assert rotated["checksum/secret"] != base["checksum/secret"]
    assert rotated["checksum/config"] == base["checksum/config"]
    assert reconfigured["checksum/config"] != base["checksum/config"]


def test_grace_period_covers_prestop_delay_and_drain(rendered):
    for name in ("default", "production"):
        values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))["shutdown"]
        if name == "production":
            values.update(yaml.safe_load(open(os.path.join(OVERLAYS, "production", "values.yaml")))["shutdown"])
        spec = deployment(rendered[name])["spec"]["template"]["spec"]
        container = spec["containers"][0]
        assert container["lifecycle"]["preStop"]["sleep"]["seconds"] == values["preStopSleepSeconds"]
        env = {}
        for doc in rendered[name]:
            if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("devsecops-app"):
                env = doc["data"]
        assert env["SHUTDOWN_TIMEOUT_SECS"] == str(values["drainTimeoutSeconds"])
        expected = values["preStopSleepSeconds"] + -(-values["delayMs"] // 1000) + values["drainTimeoutSeconds"] + 5
        assert spec["terminationGracePeriodSeconds"] == expected, name
        probes = {k: container[k]["httpGet"]["path"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
        assert probes == {"startupProbe": "/health", "livenessProbe": "/health", "readinessProbe": "/ready"}


def test_monitoring_resources_come_from_observability(rendered):
    docs = rendered["postgres-external-monitoring"]
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    with open(os.path.join(ROOT, "observability", "prometheus", "rules", "devsecops-app.rules.yml")) as f:
        assert rule["spec"]["groups"] == yaml.safe_load(f)["groups"]
    dashboards = {k: json.loads(v) for d in docs if d["kind"] == "ConfigMap"
                  and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1" for k, v in d["data"].items()}
    on_disk = {os.path.basename(p): json.load(open(p))
               for p in glob.glob(os.path.join(ROOT, "observability", "grafana", "dashboards", "*.json"))}
    assert dashboards == on_disk
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    service = next(d for d in docs if d["kind"] == "Service")
    # The rules select job="devsecops-app": the ServiceMonitor takes the job from this label.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "devsecops-app"


def test_chart_version_follows_the_workspace():
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        version = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    assert chart["appVersion"] == version == chart["version"]


def normalize(docs):
    """Stable text for snapshots: random tokens and their checksums are replaced."""
    text = yaml.safe_dump_all(docs, sort_keys=True)
    text = re.sub(r"checksum/secret: \w+", "checksum/secret: <sha256>", text)
    return text


def test_rendered_manifests_match_the_reviewed_snapshots(rendered, kustomized):
    os.makedirs(SNAPSHOTS, exist_ok=True)
    current = {f"helm-{n}.yaml": normalize(d) for n, d in rendered.items()}
    current.update({f"kustomize-{n}.yaml": normalize(d) for n, d in kustomized.items()})
    if os.environ.get("UPDATE_SNAPSHOTS"):
        for name in os.listdir(SNAPSHOTS):
            os.remove(os.path.join(SNAPSHOTS, name))
        for name, text in current.items():
            with open(os.path.join(SNAPSHOTS, name), "w") as f:
                f.write(text)
    stored = {name: open(os.path.join(SNAPSHOTS, name)).read() for name in os.listdir(SNAPSHOTS)}
    assert stored.keys() == current.keys(), "snapshot set changed: review and run with UPDATE_SNAPSHOTS=1"
    for name in current:
        assert stored[name] == current[name], f"{name} changed: review the diff, then UPDATE_SNAPSHOTS=1"


def test_checkov_finds_nothing_unjustified(rendered, kustomized, loadtest_rendered, tmp_path):
    """checkov on exactly what gets deployed: every value set (the load test's too) and overlay, in its
    namespace. Skips are annotations on the resource itself, each with a reason, an owner and an
    expiry date."""
    for name, docs in (list(rendered.items()) + list(loadtest_rendered.items())
                       + [(f"kustomize-{k}", v) for k, v in kustomized.items()]):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump_all(docs))
    out = run(["checkov", "-d", str(tmp_path), "--framework", "kubernetes", "--skip-download", "--compact",
               "-o", "json"])
    report = json.loads(out.stdout)
    reports = report if isinstance(report, list) else [report]
    results = [r.get("results", {}) for r in reports]
    failed = [(c["check_id"], c["resource"], c["file_path"]) for r in results for c in r.get("failed_checks", [])]
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    skipped = [c for r in results for c in r.get("skipped_checks", [])]
    assert passed > 100, f"checkov checked too little: {out.stderr[-2000:]}"
    assert not failed, f"checkov failures: {failed}"
    for check in skipped:
        reason = check.get("check_result", {}).get("suppress_comment", "")
        assert re.search(r"owner: \S+; expires: \d{4}-\d{2}-\d{2}", reason), f"{check['check_id']}: {reason}"


def config_map(docs):
    return next(d for d in docs if d["kind"] == "ConfigMap" and "PORT" in d.get("data", {}))["data"]


def test_monitoring_resources_carry_the_label_kube_prometheus_stack_selects(rendered):
    """kube-prometheus-stack's Prometheus selects ServiceMonitors and PrometheusRules labelled
    release: <its release name> (kube-prometheus-stack unless installed under another name)."""
    docs = rendered["postgres-external-monitoring"]
    for kind in ("ServiceMonitor", "PrometheusRule"):
        doc = next(d for d in docs if d["kind"] == kind)
        assert doc["metadata"]["labels"].get("release") == "kube-prometheus-stack", kind


def test_the_ingress_never_routes_the_metrics_port(rendered, kustomized):
    checked = 0
    for name, docs in list(rendered.items()) + list(kustomized.items()):
        services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
        metrics = config_map(docs)["METRICS_PORT"]
        for ingress in (d for d in docs if d["kind"] == "Ingress"):
            for rule in ingress["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    backend = path["backend"]["service"]
                    port = next(p for p in services[backend["name"]]["spec"]["ports"]
                                if p.get("name") == backend["port"].get("name") or p["port"] == backend["port"].get("number"))
                    assert port["targetPort"] == "http" and str(port["port"]) != metrics, (name, port)
                    checked += 1
            # and no Service the ingress names exposes the metrics port at all
            for svc in {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}:
                assert all(p["targetPort"] != "metrics" for p in services[svc]["spec"]["ports"]), (name, svc)
    assert checked >= 5


def rollout_of(args):
    out = helm_template(args)
    assert out.returncode == 0, out.stderr
    return next(d for d in documents(out.stdout) if d["kind"] == "Rollout")


def test_rollouts_fast_track_a_rollback_within_the_window(rendered, kustomized):
    """spec.rollbackWindow: going back to the version live before the last promotion skips steps,
    analysis and pause. Canary always (staging); blue-green only when turned on, since argo-rollouts
    before 1.10 leaves such a blue-green rollback Progressing (argoproj/argo-rollouts#3304). The
    window stays inside the ReplicaSets the Rollout keeps."""
    staging = deployment(rendered["staging"])
    assert staging["spec"]["rollbackWindow"] == {"revisions": 1}
    assert deployment(kustomized["staging"])["spec"]["rollbackWindow"] == {"revisions": 1}
    assert staging["spec"]["rollbackWindow"]["revisions"] < staging["spec"]["revisionHistoryLimit"]
    for docs in (rendered["production"], rendered["blue-green"], kustomized["production"]):
        assert "rollbackWindow" not in deployment(docs)["spec"]
    on = rollout_of(["-f", os.path.join(OVERLAYS, "production", "values.yaml"),
                     "--set", "rollouts.rollbackWindow.blueGreen=true", "--set", "rollouts.rollbackWindow.revisions=3"])
    assert on["spec"]["rollbackWindow"] == {"revisions": 3}
    off = rollout_of(["-f", os.path.join(OVERLAYS, "staging", "values.yaml"), "--set", "rollouts.rollbackWindow.revisions=0"])
    assert "rollbackWindow" not in off["spec"]
    for bad in ("5", "-1"):
        out = helm_template(["-f", os.path.join(OVERLAYS, "staging", "values.yaml"),
                             "--set", f"rollouts.rollbackWindow.revisions={bad}"])
        assert out.returncode != 0 and "rollbackWindow" in out.stderr, bad


def test_forwarded_headers_and_openapi_come_from_values():
    out = helm_template(["--set", "app.trustedProxies={10.0.0.0/8,192.0.2.7}", "--set", "app.openapiPublic=false",
                         "--set", "app.forwardedHops=3"])
    assert out.returncode == 0, out.stderr
    data = config_map(documents(out.stdout))
    assert data["TRUSTED_PROXIES"] == "10.0.0.0/8,192.0.2.7" and data["OPENAPI_PUBLIC"] == "false"
    assert data["FORWARDED_HOPS"] == "3"
    assert "TRUST_FORWARDED_FOR" not in data, "the service refuses the old boolean at start"
    defaults = config_map(documents(helm_template([]).stdout))
    assert defaults["TRUSTED_PROXIES"] == "10.42.0.0/16" and defaults["METRICS_PORT"] == "9464"
    # One trusted proxy on every documented target: Traefik, which sees the client's own address.
    assert defaults["FORWARDED_HOPS"] == "1"


def test_every_render_sets_forwarded_hops_next_to_trusted_proxies(rendered, kustomized):
    """FORWARDED_HOPS without TRUSTED_PROXIES means nothing, and TRUSTED_PROXIES without an explicit
    FORWARDED_HOPS leaves the walk to the service's default: every render carries both."""
    for name, docs in list(rendered.items()) + list(kustomized.items()):
        data = config_map(docs)
        assert re.fullmatch(r"[1-9][0-9]*", data["FORWARDED_HOPS"]) and 1 <= int(data["FORWARDED_HOPS"]) <= 16, name
        assert data["TRUSTED_PROXIES"], name


def serve_exit(env_overrides, tmp_path, wait=3.0):
    """Starts this revision's service with ENV_OVERRIDES; its exit code and stderr, or None while it
    still runs after WAIT seconds (then it is stopped)."""
    path = os.environ.get("DEVSECOPS_APP_BIN", "")
    assert os.access(path, os.X_OK), f"DEVSECOPS_APP_BIN={path!r}: this revision's devsecops-app is needed"
    env = {"PATH": os.environ.get("PATH", ""), "HOST": "127.0.0.1", "PORT": "0", "METRICS_PORT": "0",
           "DATABASE_URL": f"sqlite://{tmp_path}/db.sqlite", "APP_ENV": "development", **env_overrides}
    proc = subprocess.Popen([path, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        code = proc.wait(timeout=wait)
        return code, proc.stderr.read()
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(timeout=30)
        return None, ""


def test_forwarded_hops_schema_bounds_are_the_services(tmp_path):
    """The values schema allows 1 to 16 hops: the service starts with both bounds and refuses what
    is just outside them (exit 2, naming the variable), so no value the chart accepts fails at start
    and none it refuses would have started."""
    with open(os.path.join(CHART, "values.schema.json")) as f:
        hops = json.load(f)["properties"]["app"]["properties"]["forwardedHops"]
    low, high = hops["minimum"], hops["maximum"]
    for value in (low, high):
        code, err = serve_exit({"FORWARDED_HOPS": str(value), "TRUSTED_PROXIES": "10.0.0.0/8"}, tmp_path)
        assert code is None, f"FORWARDED_HOPS={value}: exit {code}: {err}"
    for value in (low - 1, high + 1):
        code, err = serve_exit({"FORWARDED_HOPS": str(value), "TRUSTED_PROXIES": "10.0.0.0/8"}, tmp_path)
        assert code == 2 and "FORWARDED_HOPS" in err, f"FORWARDED_HOPS={value}: exit {code}: {err}"
