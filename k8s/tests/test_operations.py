"""The chart's operations features, rendered and checked offline: SQLite backups (a CronJob beside
the service's pod), CloudNativePG backups and the restore into a new cluster, the vertical
autoscaler in recommendation mode, the request-rate autoscaler against prometheus-adapter's rule,
and the limits the ingress (Traefik) enforces in front of the service."""

import copy
import json
import os
import re
import subprocess

import jsonschema
import pytest
import yaml

import crd_subsets
from renders import ENVIRONMENTS, MICROK8S, PLATFORM, ROOT, VALUE_SETS, documents, helm_template, kustomize

SQLITE_BACKUP = ["--set", "database.sqlite.persistence.enabled=true", "--set", "database.sqlite.backup.enabled=true"]
CNPG = ["--set", "database.type=postgres", "--set", "database.cloudnativepg.enabled=true"]
OBJECT_STORE = ["--set", "database.cloudnativepg.backup.enabled=true",
                "--set", "database.cloudnativepg.backup.objectStore.destinationPath=s3://backups/app"]


def render(*args):
    out = helm_template(list(args))
    assert out.returncode == 0, out.stderr
    return documents(out.stdout)


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def workload(docs):
    return next(d for d in docs if d["kind"] in ("Deployment", "Rollout"))


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


# --- SQLite backups --------------------------------------------------------------------------------

def test_the_backup_job_shares_the_service_volume_on_the_service_node():
    docs = render(*SQLITE_BACKUP, "--set", "database.sqlite.backup.keep=5")
    app = workload(docs)["spec"]["template"]
    job = one(docs, "CronJob")
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["args"] == ["backup", "--dir", "/backups", "--keep", "5"]
    assert container["image"] == app["spec"]["containers"][0]["image"]
    # The same claim at the same path as the service: the database file the service writes.
    app_volumes = {v["name"]: v for v in app["spec"]["volumes"]}
    job_volumes = {v["name"]: v for v in spec["volumes"]}
    assert job_volumes["data"] == app_volumes["data"] and "persistentVolumeClaim" in job_volumes["data"]
    app_mounts = {m["name"]: m["mountPath"] for m in app["spec"]["containers"][0]["volumeMounts"]}
    job_mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert job_mounts["data"] == app_mounts["data"]
    # Backups on a claim of their own, which the chart makes and keeps.
    claim = job_volumes["backups"]["persistentVolumeClaim"]["claimName"]
    assert claim != job_volumes["data"]["persistentVolumeClaim"]["claimName"] and job_mounts["backups"] == "/backups"
    pvc = one(docs, "PersistentVolumeClaim", claim)
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # ReadWriteOnce is per node: required affinity to the service's pods on the same host.
    (term,) = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == workload(docs)["spec"]["selector"]["matchLabels"]
    # The database URL is the service's own, from its ConfigMap.
    config = one(docs, "ConfigMap")
    env = {e["name"]: e["valueFrom"]["configMapKeyRef"] for e in container["env"]}
    assert env["DATABASE_URL"] == {"name": config["metadata"]["name"], "key": "DATABASE_URL"}
    assert config["data"]["DATABASE_URL"].startswith("sqlite://" + job_mounts["data"] + "/")


def test_the_backup_pod_is_as_restricted_as_the_service_and_reachable_by_nothing():
    docs = render(*SQLITE_BACKUP)
    app = workload(docs)["spec"]["template"]
    pod = one(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]
    assert pod["spec"]["securityContext"] == app["spec"]["securityContext"]
    assert pod["spec"]["containers"][0]["securityContext"] == app["spec"]["containers"][0]["securityContext"]
    assert pod["spec"]["automountServiceAccountToken"] is False and pod["spec"]["enableServiceLinks"] is False
    labels = pod["metadata"]["labels"]
    for service in (d for d in docs if d["kind"] == "Service"):
        assert not selects(service["spec"]["selector"], labels), service["metadata"]["name"]
    assert not selects(workload(docs)["spec"]["selector"]["matchLabels"], labels)
    # One policy selects the backup pods and allows nothing, in or out.
    policies = [p for p in docs if p["kind"] == "NetworkPolicy" and selects(p["spec"]["podSelector"]["matchLabels"], labels)]
    assert [(p["spec"]["policyTypes"], p["spec"].get("ingress"), p["spec"].get("egress")) for p in policies] == \
        [(["Ingress", "Egress"], None, None)]


def test_the_development_environment_backs_up_its_sqlite_database():
    docs = render("-f", os.path.join(ROOT, "k8s", "overlays", "development", "values.yaml"))
    assert one(docs, "CronJob")["spec"]["schedule"]


# --- CloudNativePG ---------------------------------------------------------------------------------

def test_object_store_backups_archive_wal_through_the_plugin_and_schedule_base_backups():
    docs = render(*CNPG, *OBJECT_STORE, "--set", "database.cloudnativepg.backup.objectStore.s3CredentialsSecret=s3")
    cluster = one(docs, "Cluster")
    store = one(docs, "ObjectStore")
    (plugin,) = cluster["spec"]["plugins"]
    assert plugin["isWALArchiver"] is True and plugin["parameters"]["barmanObjectName"] == store["metadata"]["name"]
    assert "backup" not in cluster["spec"], "the in-tree barmanObjectStore is gone after CloudNativePG 1.31"
    assert store["spec"]["configuration"]["destinationPath"] == "s3://backups/app"
    assert store["spec"]["configuration"]["s3Credentials"]["accessKeyId"] == {"name": "s3", "key": "ACCESS_KEY_ID"}
    assert store["spec"]["retentionPolicy"] == "30d"
    scheduled = one(docs, "ScheduledBackup")
    assert scheduled["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert scheduled["spec"]["method"] == "plugin"
    assert scheduled["spec"]["pluginConfiguration"]["name"] == plugin["name"]
    # robfig/cron with seconds: six fields.
    assert len(scheduled["spec"]["schedule"].split()) == 6


def test_volume_snapshot_backups_need_no_object_store():
    docs = render(*CNPG, "--set", "database.cloudnativepg.backup.enabled=true",
                  "--set", "database.cloudnativepg.backup.method=volumeSnapshot",
                  "--set", "database.cloudnativepg.backup.volumeSnapshot.className=csi-snapshots")
    cluster = one(docs, "Cluster")
    assert cluster["spec"]["backup"]["volumeSnapshot"]["className"] == "csi-snapshots"
    assert not [d for d in docs if d["kind"] == "ObjectStore"] and "plugins" not in cluster["spec"]
    assert one(docs, "ScheduledBackup")["spec"]["method"] == "volumeSnapshot"
    validate_custom_resources(docs)


def test_a_restore_bootstraps_a_new_cluster_and_the_service_follows_it():
    docs = render(*VALUE_SETS["cloudnativepg-restored"])
    cluster = one(docs, "Cluster")
    assert cluster["metadata"]["name"] == "devsecops-app-db-r1"
    recovery = cluster["spec"]["bootstrap"]["recovery"]
    assert "initdb" not in cluster["spec"]["bootstrap"]
    assert recovery["source"] == "devsecops-app-db"
    assert recovery["recoveryTarget"] == {"targetTime": "2026-11-20T10:00:00Z"}
    (source,) = cluster["spec"]["externalClusters"]
    assert source["name"] == "devsecops-app-db"
    assert source["plugin"]["parameters"] == {"barmanObjectName": one(docs, "ObjectStore")["metadata"]["name"],
                                              "serverName": "devsecops-app-db"}
    # The old cluster is not in the render; helm keeps it (resource policy) until a person deletes it.
    assert cluster["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # The service reads the new cluster's Secret and may reach the new cluster's pods.
    volumes = {v["name"]: v for v in workload(docs)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["database-url"]["secret"]["secretName"] == "devsecops-app-db-r1-app"
    egress = one(docs, "NetworkPolicy", "devsecops-app-egress")["spec"]["egress"]
    assert {"podSelector": {"matchLabels": {"cnpg.io/cluster": "devsecops-app-db-r1"}}} in \
        [to for rule in egress for to in rule["to"]]
    # Backups of the new cluster go on under its own name.
    assert one(docs, "ScheduledBackup")["spec"]["cluster"]["name"] == "devsecops-app-db-r1"


def test_a_restore_from_a_volume_snapshot_names_the_backup():
    docs = render(*CNPG, "--set", "database.cloudnativepg.clusterName=db-2", "--set", "database.cloudnativepg.recovery.enabled=true",
                  "--set", "database.cloudnativepg.recovery.backupName=devsecops-app-db-20261120")
    recovery = one(docs, "Cluster")["spec"]["bootstrap"]["recovery"]
    assert recovery["backup"] == {"name": "devsecops-app-db-20261120"} and "source" not in recovery
    validate_custom_resources(docs)


@pytest.mark.parametrize("message,args", [
    ("needs database.sqlite.persistence.enabled", ["--set", "database.sqlite.backup.enabled=true"]),
    ("database.sqlite.backup is for SQLite", [*CNPG, "--set", "database.sqlite.backup.enabled=true"]),
    ("need database.cloudnativepg.enabled", ["--set", "database.type=postgres", "--set", "database.postgres.existingSecret=db",
                                             *OBJECT_STORE]),
    ("needs database.cloudnativepg.backup.objectStore.destinationPath", [*CNPG, "--set", "database.cloudnativepg.backup.enabled=true"]),
    ("needs database.cloudnativepg.backup.volumeSnapshot.className",
     [*CNPG, "--set", "database.cloudnativepg.backup.enabled=true", "--set", "database.cloudnativepg.backup.method=volumeSnapshot"]),
    ("exactly one of backupName", [*CNPG, "--set", "database.cloudnativepg.recovery.enabled=true"]),
    ("restores into a new cluster", [*CNPG, *OBJECT_STORE, "--set", "database.cloudnativepg.recovery.enabled=true",
                                     "--set", "database.cloudnativepg.recovery.sourceCluster=devsecops-app-db"]),
    ("targetTime needs the WAL archive", [*CNPG, "--set", "database.cloudnativepg.clusterName=db-2",
                                          "--set", "database.cloudnativepg.recovery.enabled=true",
                                          "--set", "database.cloudnativepg.recovery.backupName=b",
                                          "--set", "database.cloudnativepg.recovery.targetTime=2026-11-20T10:00:00Z"]),
    ("is a metric of the HorizontalPodAutoscaler", [*CNPG, "--set", "autoscaling.requestRate.enabled=true"]),
])
def test_backup_restore_and_scaling_settings_that_cannot_work_are_refused(message, args):
    out = helm_template(args)
    assert out.returncode != 0 and message in out.stderr, out.stderr


@pytest.mark.parametrize("args", [
    ["--set", "database.cloudnativepg.backup.schedule=0 3 * * *"],  # a CronJob's five fields
    ["--set", "database.cloudnativepg.backup.objectStore.retentionPolicy=30 days"],
    ["--set", "database.cloudnativepg.backup.method=barmanObjectStore"],
    ["--set", "database.cloudnativepg.recovery.targetTime=yesterday"],
    ["--set", "database.sqlite.backup.keep=0"],
    ["--set", "autoscaling.requestRate.averagePerPod=lots"],
])
def test_the_values_schema_refuses_malformed_backup_and_scaling_values(args):
    out = helm_template(args)
    assert out.returncode != 0 and "values don't meet the specifications of the schema" in out.stderr, out.stderr


# --- custom resources against their upstream schemas -----------------------------------------------

def validate_custom_resources(docs):
    checked = 0
    for doc in docs:
        schema = crd_subsets.SCHEMAS.get((doc["apiVersion"], doc["kind"]))
        if schema:
            errors = [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
            assert not errors, f"{doc['kind']}: {errors}"
            checked += 1
    return checked


def schema_errors(doc):
    schema = crd_subsets.SCHEMAS[(doc["apiVersion"], doc["kind"])]
    return [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]


def test_the_field_schemas_refuse_what_the_upstream_crds_refuse():
    """Each hand-kept schema fails on a misspelt field, a value outside the upstream enum and a
    missing required field: the check can fail."""
    docs = render(*VALUE_SETS["cloudnativepg-canary-hpa"])
    vpa, scheduled, store = (one(docs, k) for k in ("VerticalPodAutoscaler", "ScheduledBackup", "ObjectStore"))
    middleware = one(render(*VALUE_SETS["sqlite-persistent-ingress"]), "Middleware")
    for doc in (vpa, scheduled, store, middleware):
        assert schema_errors(doc) == []
    cases = []
    bad = copy.deepcopy(vpa)
    bad["spec"]["updatePolicy"]["updateMode"] = "off"
    cases.append(bad)
    bad = copy.deepcopy(vpa)
    del bad["spec"]["targetRef"]["kind"]
    cases.append(bad)
    bad = copy.deepcopy(scheduled)
    bad["spec"]["scheduel"] = bad["spec"].pop("schedule")
    cases.append(bad)
    bad = copy.deepcopy(store)
    bad["spec"]["configuration"]["serverName"] = "x"  # the plugin forbids it there
    cases.append(bad)
    bad = copy.deepcopy(store)
    bad["spec"]["retentionPolicy"] = "30 days"
    cases.append(bad)
    bad = copy.deepcopy(middleware)
    bad["spec"]["buffering"]["maxRequestBodyBytes"] = "64Ki"
    cases.append(bad)
    for doc in cases:
        assert schema_errors(doc), doc["spec"]


# --- scaling ---------------------------------------------------------------------------------------

def test_the_vertical_autoscaler_only_recommends_for_the_service_container():
    for args, kind in ((VALUE_SETS["sqlite-persistent-ingress"], "Deployment"),
                       (VALUE_SETS["cloudnativepg-canary-hpa"], "Rollout")):
        docs = render(*args)
        vpa = one(docs, "VerticalPodAutoscaler")
        target = workload(docs)
        assert target["kind"] == kind
        assert vpa["spec"]["targetRef"] == {"apiVersion": target["apiVersion"], "kind": kind,
                                            "name": target["metadata"]["name"]}
        assert vpa["spec"]["updatePolicy"] == {"updateMode": "Off"}
        (policy,) = vpa["spec"]["resourcePolicy"]["containerPolicies"]
        assert policy["containerName"] == target["spec"]["template"]["spec"]["containers"][0]["name"]
    assert not [d for d in render() if d["kind"] == "VerticalPodAutoscaler"], "off by default"


ADAPTER = os.path.join(PLATFORM, "prometheus-adapter-values.yaml")


def go_expand(template, match):
    """regexp.Expand: $1, ${1}, $name, ${name} (Go's syntax) against a Python match."""
    def group(m):
        key = m.group(1) or m.group(2)
        return match.group(int(key) if key.isdigit() else key) or ""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", group, template.replace("$$", "\0")).replace("\0", "$")


def adapter_metrics(rule):
    """The custom metric names a prometheus-adapter rule exposes for the series it finds, after
    pkg/naming/metric_namer.go (kubernetes-sigs/prometheus-adapter @0536a5d4): `name.matches`
    (default: everything) is matched against the series name and `name.as` expanded with its
    groups; without `as`, $0 when the pattern has no group and $1 when it has one."""
    series = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", rule["seriesQuery"]).group(1)
    pattern = re.compile(rule.get("name", {}).get("matches") or ".*")
    name_as = rule.get("name", {}).get("as") or {0: "$0", 1: "$1"}[pattern.groups]
    match = pattern.search(series)
    return series, (go_expand(name_as, match) if match else None)


def request_rate_hpa(docs):
    hpa = one(docs, "HorizontalPodAutoscaler")
    return [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]


def test_the_request_rate_metric_is_the_one_prometheus_adapters_rule_exposes():
    with open(ADAPTER) as f:
        adapter = yaml.safe_load(f)
    exposed = {}
    for rule in adapter["rules"]["custom"]:
        series, name = adapter_metrics(rule)
        exposed[name] = (series, rule)
    (metric,) = request_rate_hpa(render(*VALUE_SETS["cloudnativepg-canary-hpa"]))
    name = metric["pods"]["metric"]["name"]
    assert name in exposed, f"the HPA asks for {name}; prometheus-adapter serves {sorted(exposed)}"
    series, rule = exposed[name]
    # A Pods metric is looked up per pod in the HPA's namespace: the rule must map both labels.
    assert {k: v["resource"] for k, v in rule["resources"]["overrides"].items()} == {"namespace": "namespace", "pod": "pod"}
    # ... and count a metric the service exports, with the labels Prometheus adds to its series.
    with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
        assert f"| `{series}` | counter |" in f.read()
    scrape = yaml.safe_load(yaml.safe_load(open(os.path.join(PLATFORM, "prometheus-values.yaml")))["extraScrapeConfigs"])
    job = next(j for j in scrape if j["job_name"] == "devsecops-app")
    assert {r.get("target_label") for r in job["relabel_configs"]} >= {"namespace", "pod"}
    assert metric["pods"]["target"]["type"] == "AverageValue"


def test_the_naming_rules_are_prometheus_adapters():
    """The reimplementation against prometheus-adapter's own cases (pkg/naming tests and README)."""
    assert adapter_metrics({"seriesQuery": "http_requests_total{x!=\"\"}", "name": {"matches": "^(.*)_total$"}}) == \
        ("http_requests_total", "http_requests")
    assert adapter_metrics({"seriesQuery": "http_requests_total", "name": {"matches": "^(.*)_total$", "as": "${1}_per_second"}}) == \
        ("http_requests_total", "http_requests_per_second")
    assert adapter_metrics({"seriesQuery": "http_requests_total"}) == ("http_requests_total", "http_requests_total")
    assert adapter_metrics({"seriesQuery": "up", "name": {"matches": "^(.*)_total$"}}) == ("up", None)


def test_the_adapters_query_gives_each_pod_its_api_request_rate(tmp_path):
    """The rule's metricsQuery as prometheus-adapter fills it in for a Pods metric
    (pkg/naming/metrics_query.go: .Series, .LabelMatchers namespace="..",pod=~"a|b", .GroupBy pod),
    evaluated by promtool on series as the scrape labels them: 10 and 20 requests/s, probes excluded."""
    with open(ADAPTER) as f:
        (rule,) = yaml.safe_load(f)["rules"]["custom"]
    query = (rule["metricsQuery"].replace("<<.Series>>", "http_requests_total")
             .replace("<<.LabelMatchers>>", 'namespace="apps",pod=~"p1|p2"').replace("<<.GroupBy>>", "pod"))
    assert "<<" not in query, query

    def series(pod, endpoint, per_minute):
        return {"series": f'http_requests_total{{namespace="apps",pod="{pod}",endpoint="{endpoint}",method="GET",'
                          f'status="200",job="devsecops-app"}}', "values": f"0+{per_minute}x10"}
    test = {"rule_files": [], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [series("p1", "/api/users", 600), series("p2", "/api/users/{id}", 1200),
                         series("p1", "/health", 6000), series("p2", "/ready", 6000),
                         series("p3", "/api/users", 600)],
        "promql_expr_test": [{"expr": query, "eval_time": "5m",
                              "exp_samples": [{"labels": '{pod="p1"}', "value": 10}, {"labels": '{pod="p2"}', "value": 20}]}],
    }]}
    path = tmp_path / "adapter-test.yml"
    path.write_text(yaml.safe_dump(test))
    out = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# --- the ingress in front of the service -----------------------------------------------------------

def config_map(docs):
    return next(d for d in docs if d["kind"] == "ConfigMap" and "PORT" in d.get("data", {}))["data"]


def test_every_ingress_refuses_bodies_over_the_service_limit_with_its_own_middleware():
    checked = 0
    renders = [(name, render(*args)) for name, args in VALUE_SETS.items()]
    renders += [(f"kustomize-{env}", kustomize(env)) for env in ENVIRONMENTS]
    for name, docs in renders:
        for ingress in (d for d in docs if d["kind"] == "Ingress"):
            reference = ingress["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"]
            # Traefik's Kubernetes CRD provider names a Middleware <namespace>-<name>@kubernetescrd.
            middlewares = {f"{m['metadata']['namespace']}-{m['metadata']['name']}@kubernetescrd": m
                           for m in docs if m["kind"] == "Middleware"}
            assert reference in middlewares, (name, reference, sorted(middlewares))
            assert middlewares[reference]["metadata"]["namespace"] == ingress["metadata"]["namespace"], name
            buffering = middlewares[reference]["spec"]["buffering"]
            limit = int(config_map(docs)["MAX_BODY_BYTES"])
            assert buffering == {"maxRequestBodyBytes": limit, "memRequestBodyBytes": limit}, name
            checked += 1
    assert checked >= 8
    other = render("--set", "ingress.enabled=true", "--set", "ingress.traefikMiddleware=false", "--set", "ingress.className=nginx")
    assert not [d for d in other if d["kind"] == "Middleware"]
    assert "annotations" not in one(other, "Ingress")["metadata"]


TRAEFIK_VALUES = os.path.join(PLATFORM, "traefik-values.json")
# actix-http refuses heads over 128 KiB before routing (README, "Requests the HTTP layer refuses").
ACTIX_MAX_HEAD = 128 * 1024
# Go's net/http reads up to MaxHeaderBytes plus 4096 bytes of bufio slop before it answers 431
# (net/http server.go, initialReadLimitSize), and Traefik adds its X-Forwarded-* and X-Real-Ip
# headers before forwarding: room left for those under actix's limit.
GO_SLOP = 4096
FORWARDING_ROOM = 2048


def traefik_flags():
    with open(TRAEFIK_VALUES) as f:
        values = json.load(f)
    assert set(values) == {"additionalArguments"}, "entry point settings as flags: every chart version takes them"
    flags = {}
    for argument in values["additionalArguments"]:
        key, _, value = argument.partition("=")
        assert key.startswith("--") and key not in flags, argument
        flags[key[2:]] = value
    return flags


def seconds(duration):
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, duration
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[match.group(2)]


@pytest.mark.parametrize("target", ["appliance", *MICROK8S, "default"])
def test_traefik_holds_requests_to_the_service_limits_and_logs_them_with_the_client(target):
    """Both documented targets' Traefik (k3s' on the appliance, MicroK8s' ingress addon) gets
    k8s/platform/traefik-values.json. Against the service's values in that target's render:
    - heads: every head the service itself judges (its 431 problem at MAX_HEADER_BYTES) passes,
      and no head reaches actix-http's bare 128 KiB refusal, which the ingress then refuses;
    - time: Traefik has one read deadline per request (entry point readTimeout, a connection
      deadline: pkg/server/server_entrypoint_tcp.go), so it must outlast the service's own head
      timeout plus its request time limit, or it would cut off the service's 503/408 answers;
    - every entry point carries the same settings; the access log is JSON with the client address
      (ClientHost, a default field) and the service's request id for correlation."""
    flags = traefik_flags()
    data = config_map(render(*VALUE_SETS[target]))
    for entry_point in ("web", "websecure"):
        head = int(flags[f"entryPoints.{entry_point}.http.maxHeaderBytes"]) + GO_SLOP
        assert int(data["MAX_HEADER_BYTES"]) + FORWARDING_ROOM <= head, (entry_point, head)
        assert head + FORWARDING_ROOM <= ACTIX_MAX_HEAD, (entry_point, head)
        read = seconds(flags[f"entryPoints.{entry_point}.transport.respondingTimeouts.readTimeout"])
        assert read >= (int(data["HEADER_READ_TIMEOUT_MS"]) + int(data["REQUEST_TIMEOUT_MS"])) / 1000, read
        assert read <= 2 * (int(data["HEADER_READ_TIMEOUT_MS"]) + int(data["REQUEST_TIMEOUT_MS"])) / 1000, read
    assert flags["accesslog"] == "true" and flags["accesslog.format"] == "json"
    assert flags["accesslog.fields.headers.names.X-Request-Id"] == "keep"
    assert not [k for k in flags if k.startswith("accesslog.fields.names.Client")], "client fields kept"


def test_the_ingress_limit_check_fails_on_traefiks_defaults(tmp_path, monkeypatch):
    """With Traefik's own defaults (1 MiB heads, 60 s read timeout) the check above fails: the
    limits are configured, not assumed."""
    defaults = {"additionalArguments": [f"--entryPoints.{e}.{k}" for e in ("web", "websecure") for k in
                                        ("http.maxHeaderBytes=1048576", "transport.respondingTimeouts.readTimeout=60s")]
                + ["--accesslog=true", "--accesslog.format=json", "--accesslog.fields.headers.names.X-Request-Id=keep"]}
    path = tmp_path / "traefik-values.json"
    path.write_text(json.dumps(defaults))
    monkeypatch.setattr(__import__(__name__), "TRAEFIK_VALUES", str(path))
    with pytest.raises(AssertionError):
        test_traefik_holds_requests_to_the_service_limits_and_logs_them_with_the_client("appliance")


def test_traefik_keeps_the_client_address_on_every_layout():
    """The service believes one trusted hop (FORWARDED_HOPS 1 from Traefik's pod network), so Traefik
    itself must see the client's address. A Service in front of Traefik does so only with
    externalTrafficPolicy Local (Cluster masquerades through another node); the MicroK8s path passes
    that file to the addon's Traefik, and nothing in it may turn a Service on or change its type
    (the addon, like the appliance, runs on host ports without one)."""
    with open(os.path.join(PLATFORM, "traefik-service-values.yaml")) as f:
        values = yaml.safe_load(f)
    assert values == {"service": {"spec": {"externalTrafficPolicy": "Local"}}}
    with open(TRAEFIK_VALUES) as f:
        assert "service" not in json.load(f), "the shared limits must not change the Service layout"
    for target in ("appliance", *MICROK8S, "default"):
        data = config_map(render(*VALUE_SETS[target]))
        assert data["FORWARDED_HOPS"] == "1" and data["TRUSTED_PROXIES"], target


def duration(text):
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    assert match, text
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def microk8s_scrape():
    """The devsecops-app job of the MicroK8s path's Prometheus: (interval, timeout) in seconds."""
    with open(os.path.join(PLATFORM, "prometheus-values.yaml")) as f:
        values = yaml.safe_load(f)
    (job,) = [j for j in yaml.safe_load(values["extraScrapeConfigs"]) if j["job_name"] == "devsecops-app"]
    interval = job.get("scrape_interval") or values.get("server", {}).get("global", {}).get("scrape_interval", "1m")
    return duration(interval), duration(job.get("scrape_timeout", "10s"))


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_the_timeouts_of_every_render_nest(name):
    """docs/kubernetes.md, "Timeouts and how they nest", for every value set:
    - a request in flight at SIGTERM (its head within HEADER_READ_TIMEOUT_MS, then REQUEST_TIMEOUT_MS)
      ends within the drain (SHUTDOWN_TIMEOUT_SECS), and the grace period covers preStop, the
      delay, the drain and 5 s;
    - every probe answers (timeoutSeconds) within its period (the kubelet runs them one at a time);
    - a scrape ends before the next, and a rollout analysis window holds four scrapes at least:
      rate() needs two samples, and with fewer the analysis sees no traffic and passes."""
    docs = render(*VALUE_SETS[name])
    data = config_map(docs)
    workload = next(d for d in docs if d["kind"] in ("Deployment", "Rollout"))
    spec = workload["spec"]["template"]["spec"]
    (container,) = [c for c in spec["containers"] if c["name"] == "devsecops-app"]
    drain = int(data["SHUTDOWN_TIMEOUT_SECS"])
    assert (int(data["HEADER_READ_TIMEOUT_MS"]) + int(data["REQUEST_TIMEOUT_MS"])) / 1000 <= drain, name
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    delay = -(-int(data["SHUTDOWN_DELAY_MS"]) // 1000)
    assert spec["terminationGracePeriodSeconds"] == pre_stop + delay + drain + 5, name
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["timeoutSeconds"] <= container[probe]["periodSeconds"], (name, probe)
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    scrapes = [(duration(e["interval"]), duration(e["scrapeTimeout"])) for m in monitors for e in m["spec"]["endpoints"]]
    if name.startswith("microk8s-"):
        scrapes.append(microk8s_scrape())
    for interval, timeout in scrapes:
        assert timeout < interval, name
    # Value sets without a ServiceMonitor and off the MicroK8s path leave scraping to the cluster.
    for template in (d for d in docs if d["kind"] == "AnalysisTemplate"):
        for metric in template["spec"]["metrics"]:
            for interval, _ in scrapes:
                assert duration(metric["interval"]) >= 4 * interval, (name, metric["interval"], interval)
