"""The chart's ServiceMonitor and AnalysisTemplate on the real Prometheus server.

The Prometheus Operator turns a ServiceMonitor into a scrape job whose relabelling reads the
Kubernetes service discovery's meta labels. Here the same job is written out the way the operator
writes it (prometheus-operator/prometheus-operator pkg/prometheus/promcfg.go,
generateServiceMonitorConfig, commit 6adcebc: keep by the Service's labels and the endpoint's port
name, namespace/service/pod/container labels, podTargetLabels, job from jobLabel, `endpoint` from the
port name, then the ServiceMonitor's own relabelings), and each target carries the meta labels the
endpoints discovery would give it for the rendered Services and pods of a blue-green rollout after
promotion: the active and preview Services select the new pod, the metrics Service both pods.
Three real service processes stand in for the pods: the old version (its database cut, so it
answers 5xx), the new version (healthy traffic) and an idle one (scraped, no API traffic).

Checks: every pod is scraped once; the service's own `endpoint` label (the route) survives, with no
`exported_endpoint`; and the rendered analysis query, with the arguments the Rollout passes,
measures the new pods only, fails without data and passes an idle but scraped version.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

import pytest
import yaml

from conftest import ROOT, RULES
from test_e2e_prometheus import APP_BIN, POSTGRES_URL, Proxy, _status, free_port, http, wait_until

sys.path.insert(0, os.path.join(ROOT, "k8s", "tests"))
from renders import NAMESPACE, VALUE_SETS, documents, helm_template  # noqa: E402

PODS = {"old": "5d4c3b2a1f", "new": "6f7e8d9c0b", "idle": "7a8b9c0d1e"}


def sanitize(name):
    return "".join(c if c.isalnum() else "_" for c in name)


def relabel(config):
    """A ServiceMonitor RelabelConfig (camelCase) as Prometheus' relabel_config."""
    keys = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    return {keys.get(k, k): v for k, v in config.items()}


def operator_job(monitor):
    """The scrape job the operator writes for the ServiceMonitor's first endpoint (role endpoints)."""
    spec, endpoint = monitor["spec"], monitor["spec"]["endpoints"][0]
    rules = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
    for key, value in sorted(spec["selector"].get("matchLabels", {}).items()):
        rules.append({"action": "keep", "source_labels": [f"__meta_kubernetes_service_label_{sanitize(key)}",
                                                          f"__meta_kubernetes_service_labelpresent_{sanitize(key)}"],
                      "regex": f"({value});true"})
    assert not spec["selector"].get("matchExpressions"), "matchExpressions are not written out here"
    rules.append({"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"],
                  "regex": endpoint["port"]})
    target = ["__meta_kubernetes_endpoint_address_target_kind", "__meta_kubernetes_endpoint_address_target_name"]
    rules += [
        {"source_labels": target, "separator": ";", "regex": "Node;(.*)", "replacement": "${1}", "target_label": "node"},
        {"source_labels": target, "separator": ";", "regex": "Pod;(.*)", "replacement": "${1}", "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
    ]
    for label in spec.get("targetLabels", []):
        rules.append({"source_labels": [f"__meta_kubernetes_service_label_{sanitize(label)}"],
                      "target_label": sanitize(label), "regex": "(.+)", "replacement": "${1}"})
    for label in spec.get("podTargetLabels", []):
        rules.append({"source_labels": [f"__meta_kubernetes_pod_label_{sanitize(label)}"],
                      "target_label": sanitize(label), "regex": "(.+)", "replacement": "${1}"})
    rules.append({"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job", "replacement": "${1}"})
    if spec.get("jobLabel"):
        rules.append({"source_labels": [f"__meta_kubernetes_service_label_{sanitize(spec['jobLabel'])}"],
                      "target_label": "job", "regex": "(.+)", "replacement": "${1}"})
    rules.append({"target_label": "endpoint", "replacement": endpoint["port"]})
    rules += [relabel(r) for r in endpoint.get("relabelings", [])]
    job = {"job_name": f"serviceMonitor/{monitor['metadata']['namespace']}/{monitor['metadata']['name']}/0",
           "metrics_path": endpoint.get("path", "/metrics"), "relabel_configs": rules}
    if endpoint.get("metricRelabelings"):
        job["metric_relabel_configs"] = [relabel(r) for r in endpoint["metricRelabelings"]]
    return job


def discovered_targets(services, pods, selected):
    """Static targets with the meta labels the endpoints role gives each Service port x pod."""
    groups = []
    for service in services:
        name = service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            for pod in selected[name]:
                labels = {"__meta_kubernetes_namespace": NAMESPACE, "__meta_kubernetes_service_name": name,
                          "__meta_kubernetes_endpoint_port_name": port["name"],
                          "__meta_kubernetes_endpoint_address_target_kind": "Pod",
                          "__meta_kubernetes_endpoint_address_target_name": pod["name"],
                          "__meta_kubernetes_pod_name": pod["name"], "__meta_kubernetes_pod_phase": "Running",
                          "__meta_kubernetes_pod_container_name": "devsecops-app"}
                for key, value in service["metadata"]["labels"].items():
                    labels[f"__meta_kubernetes_service_label_{sanitize(key)}"] = value
                    labels[f"__meta_kubernetes_service_labelpresent_{sanitize(key)}"] = "true"
                for key, value in pod["labels"].items():
                    labels[f"__meta_kubernetes_pod_label_{sanitize(key)}"] = value
                address = pod["ports"][port["targetPort"]]
                groups.append({"targets": [f"127.0.0.1:{address}"], "labels": labels})
    return groups


@pytest.fixture(scope="module")
def rollout_stack():
    out = helm_template(VALUE_SETS["blue-green"] + ["--set", "metrics.serviceMonitor.enabled=true"])
    assert out.returncode == 0, out.stderr
    docs = documents(out.stdout)
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    services = [d for d in docs if d["kind"] == "Service"]
    rollout = next(d for d in docs if d["kind"] == "Rollout")
    template = next(d for d in docs if d["kind"] == "AnalysisTemplate")
    container = rollout["spec"]["template"]["spec"]["containers"][0]
    port_numbers = {p["name"]: p["containerPort"] for p in container["ports"]}

    workdir = tempfile.mkdtemp(prefix="devsecops-servicemonitor-")
    database = f"test_e2e_sm_{os.getpid()}"
    subprocess.run(["psql", "-q", POSTGRES_URL, "-c", f"DROP DATABASE IF EXISTS {database}", "-c",
                    f"CREATE DATABASE {database}"], check=True, capture_output=True)
    parsed = urllib.parse.urlsplit(POSTGRES_URL)
    proxy = Proxy((parsed.hostname, parsed.port or 5432))
    processes, pods = [], {}
    try:
        for version, hash_ in PODS.items():
            http_port, metrics_port = free_port(), free_port()
            url = (POSTGRES_URL.rsplit("@", 1)[0] + f"@127.0.0.1:{proxy.port}/{database}" if version == "old"
                   else f"sqlite://{workdir}/{version}.db")
            log = open(os.path.join(workdir, f"{version}.log"), "wb")
            processes.append((subprocess.Popen([APP_BIN], stdout=log, stderr=subprocess.STDOUT, env={
                "PATH": os.environ["PATH"], "HOST": "127.0.0.1", "PORT": str(http_port),
                "METRICS_PORT": str(metrics_port), "DATABASE_URL": url, "RATE_LIMIT_PER_SECOND": "0",
                "REQUEST_TIMEOUT_MS": "2000", "DB_ACQUIRE_TIMEOUT_MS": "300"}), log))
            labels = dict(rollout["spec"]["template"]["metadata"]["labels"], **{"rollouts-pod-template-hash": hash_})
            pods[version] = {"name": f"devsecops-app-{hash_}-x", "labels": labels, "base": f"http://127.0.0.1:{http_port}",
                             "ports": {"http": http_port, "metrics": metrics_port, port_numbers["http"]: http_port,
                                       port_numbers.get("metrics", metrics_port): metrics_port}}
        for pod in pods.values():
            wait_until(lambda p=pod: _status(p["base"] + "/ready") == 200, 20, "a pod to be ready")
        # After promotion: the active and preview Services select the new pods; the metrics Service
        # selects by the release's labels only, every version.
        selected = {s["metadata"]["name"]: list(pods.values()) if s["metadata"]["name"].endswith("-metrics")
                    else [pods["new"]] for s in services}
        job = operator_job(monitor)
        job["static_configs"] = discovered_targets(services, list(pods.values()), selected)
        prom_port = free_port()
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": [RULES],
                  "scrape_configs": [job]}
        config_path = os.path.join(workdir, "prometheus.yml")
        with open(config_path, "w") as f:
            yaml.safe_dump(config, f)
        prom_log = open(os.path.join(workdir, "prometheus.log"), "wb")
        processes.append((subprocess.Popen(["prometheus", f"--config.file={config_path}",
                                            f"--storage.tsdb.path={os.path.join(workdir, 'tsdb')}",
                                            f"--web.listen-address=127.0.0.1:{prom_port}"],
                                           stdout=prom_log, stderr=subprocess.STDOUT), prom_log))
        prometheus = f"http://127.0.0.1:{prom_port}"
        wait_until(lambda: _status(prometheus + "/-/ready") == 200, 30, "Prometheus")
        yield {"prometheus": prometheus, "pods": pods, "proxy": proxy, "template": template, "rollout": rollout}
    finally:
        for process, log in processes:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()
        proxy.close()
        subprocess.run(["psql", "-q", POSTGRES_URL, "-c", f"DROP DATABASE IF EXISTS {database}"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


def instant(stack, expr):
    status, body = http("GET", f"{stack['prometheus']}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    body = json.loads(body)
    assert status == 200 and body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]


def analysis(stack, hash_):
    """The rendered AnalysisTemplate's query with the arguments the Rollout passes (its `job` and
    `namespace` values, the new ReplicaSet's hash), and its successCondition on the result."""
    args = {a["name"]: a.get("value") for a in stack["rollout"]["spec"]["strategy"]["blueGreen"]
            ["prePromotionAnalysis"]["args"]}
    args["hash"] = hash_
    metric = stack["template"]["spec"]["metrics"][0]
    query = metric["provider"]["prometheus"]["query"]
    for name, value in args.items():
        query = query.replace("{{args.%s}}" % name, value)
    assert "{{" not in query, query
    values = [float(r["value"][1]) for r in instant(stack, query)]
    condition = metric["successCondition"].replace("&&", " and ").replace("||", " or ")
    return values, eval(condition, {"__builtins__": {}}, {"len": len, "result": values})  # noqa: S307


def test_servicemonitor_scrapes_each_pod_once_and_keeps_the_route_label(rollout_stack):
    stack, pods = rollout_stack, rollout_stack["pods"]
    stack["proxy"].cut()  # the old version's database goes away: it answers 5xx
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        assert http("GET", pods["new"]["base"] + "/api/users?limit=5")[0] == 200
        assert http("GET", pods["old"]["base"] + "/api/users?limit=5")[0] == 503
        time.sleep(0.02)
    time.sleep(3)
    up = instant(stack, 'up{job="devsecops-app"}')
    assert sorted(s["metric"]["pod"] for s in up) == sorted(p["name"] for p in pods.values()), up
    assert all(s["value"][1] == "1" for s in up), up
    assert all(s["metric"]["namespace"] == NAMESPACE for s in up)
    series = instant(stack, 'http_requests_total{job="devsecops-app"}')
    assert series, "no request series"
    names = set().union(*(s["metric"] for s in series))
    assert "exported_endpoint" not in names, names
    routes = {s["metric"]["endpoint"] for s in series}
    assert "/api/users" in routes and "metrics" not in routes, routes
    hashes = {s["metric"].get("rollouts_pod_template_hash") for s in series}
    assert hashes >= {PODS["old"], PODS["new"]}, hashes


def test_analysis_measures_the_new_pods_fails_without_data_and_passes_an_idle_version(rollout_stack):
    stack = rollout_stack
    wait_until(lambda: instant(stack, f'http_requests_total{{rollouts_pod_template_hash="{PODS["old"]}", '
                                      'status="503"}'), 20, "the old version's errors in Prometheus")
    new, new_ok = analysis(stack, PODS["new"])
    assert new_ok and new == [1.0], new
    old, old_ok = analysis(stack, PODS["old"])
    assert not old_ok and old and old[0] < 0.5, old
    idle, idle_ok = analysis(stack, PODS["idle"])
    assert idle_ok and idle == [1.0], "a scraped version without API traffic passes"
    missing, missing_ok = analysis(stack, "0000000000")
    assert not missing_ok and missing == [], "no data at all must fail the analysis"
