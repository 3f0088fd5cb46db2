"""What the rendered NetworkPolicies allow, evaluated (netpol.py) on a model cluster with the pods
each target really has: the release's pods and its helm test pod as rendered, the ingress controller
where each target runs it, Prometheus, DNS, the database, and strangers. Each allow is a case; so is
the default deny around it."""

import pytest

from netpol import Cluster, Endpoint
from renders import MICROK8S, NAMESPACE, VALUE_SETS, documents, helm_template

CONTROLLERS = {
    # k3s (the appliance and the chart's default): Traefik from its HelmChart in kube-system
    # (k3s-io/k3s manifests/traefik.yaml), labelled by the Traefik chart.
    "k3s": Endpoint("traefik", "kube-system", {"app.kubernetes.io/name": "traefik",
                                                "app.kubernetes.io/instance": "traefik-kube-system"}, "10.42.0.5"),
    # MicroK8s' ingress addon: namespace `ingress` (canonical/microk8s-core-addons addons/ingress).
    "microk8s": Endpoint("traefik", "ingress", {"app.kubernetes.io/name": "traefik",
                                                 "app.kubernetes.io/instance": "traefik-ingress"}, "10.1.0.5"),
}
TARGET_OF = {"default": "k3s", "appliance": "k3s", **{name: "microk8s" for name in MICROK8S}}
NAMESPACES = {NAMESPACE: {}, "kube-system": {}, "ingress": {}, "monitoring": {}, "other": {}}


def render(name):
    out = helm_template(VALUE_SETS[name])
    assert out.returncode == 0, out.stderr
    return documents(out.stdout)


def pod(docs, kind):
    """The pod a workload (or the helm test hook) makes, with its labels and named ports."""
    for doc in docs:
        if doc["kind"] == kind or (kind == "Deployment" and doc["kind"] == "Rollout"):
            template = doc["spec"]["template"] if kind != "Pod" else doc
            ports = {p["name"]: (p["containerPort"], p.get("protocol", "TCP"))
                     for c in template["spec"]["containers"] for p in c.get("ports", []) if "name" in p}
            return Endpoint(f"{kind} pod", NAMESPACE, template["metadata"]["labels"], "10.42.1.10", ports)
    raise AssertionError(f"no {kind}")


@pytest.fixture(params=sorted(TARGET_OF), scope="module")
def world(request):
    docs = render(request.param)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    app = pod(docs, "Deployment")
    return {
        "name": request.param,
        "cluster": Cluster(policies, NAMESPACES),
        "app": app,
        "test": pod(docs, "Pod"),
        "controller": CONTROLLERS[TARGET_OF[request.param]],
        # The server pod as each Prometheus labels it: the prometheus-community/prometheus chart
        # (the MicroK8s path) and kube-prometheus-stack's operator.
        "prometheus": Endpoint("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus",
                                                            "app.kubernetes.io/component": "server",
                                                            "app.kubernetes.io/instance": "prometheus"}, "10.42.2.2"),
        "operator prometheus": Endpoint("prometheus-kube-prometheus-stack-prometheus-0", "monitoring",
                                        {"app.kubernetes.io/name": "prometheus",
                                         "app.kubernetes.io/managed-by": "prometheus-operator",
                                         "prometheus": "kube-prometheus-stack-prometheus"}, "10.42.2.3"),
        # Everything else that shares the monitoring and ingress namespaces on the documented targets.
        "monitoring neighbours": [
            Endpoint(name, "monitoring", {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}, ip)
            for name, ip in (("grafana", "10.42.2.4"), ("loki", "10.42.2.5"), ("alloy", "10.42.2.6"),
                             ("alertmanager", "10.42.2.7"), ("kube-state-metrics", "10.42.2.8"))],
        "ingress neighbour": Endpoint("cert-manager-solver", "ingress" if TARGET_OF[request.param] == "microk8s"
                                      else "kube-system", {"app": "acme-solver"}, "10.42.0.9"),
        "dns": Endpoint("coredns", "kube-system", {"k8s-app": "kube-dns"}, "10.42.0.2"),
        "neighbour": Endpoint("neighbour", NAMESPACE, {"app": "other"}, "10.42.1.20", {"http": (8080, "TCP")}),
        "stranger": Endpoint("stranger", "other", {"app.kubernetes.io/name": "traefik"}, "10.42.3.3"),
        "internet": Endpoint("internet", None, {}, "203.0.113.9"),
        "http": app.ports["http"][0],
        "metrics": app.ports["metrics"][0],
    }


def test_default_deny_refuses_everything_not_listed(world):
    c, app = world["cluster"], world["app"]
    for who in ("neighbour", "stranger", "internet"):
        for port in (world["http"], world["metrics"]):
            assert not c.allows(world[who], app, port), f"{world['name']}: {who} -> app:{port}"
    assert not c.allows(app, world["neighbour"], 8080), "egress to a neighbour"
    assert not c.allows(app, world["internet"], 443), "egress to the internet"
    assert not c.allows(app, world["prometheus"], 9090), "egress to Prometheus"


def test_the_ingress_controller_reaches_the_http_port_and_never_the_metrics_port(world):
    c, app, controller = world["cluster"], world["app"], world["controller"]
    assert c.allows(controller, app, world["http"]), world["name"]
    assert not c.allows(controller, app, world["metrics"]), world["name"]
    other = CONTROLLERS["microk8s" if TARGET_OF[world["name"]] == "k3s" else "k3s"]
    assert not c.allows(other, app, world["http"]), "the other target's controller"


def test_prometheus_reaches_the_metrics_port_only(world):
    c, app = world["cluster"], world["app"]
    for prometheus in (world["prometheus"], world["operator prometheus"]):
        assert c.allows(prometheus, app, world["metrics"]), prometheus.name
        assert not c.allows(prometheus, app, world["http"]), prometheus.name


def test_only_prometheus_and_the_controller_of_their_namespaces_get_in(world):
    """The monitoring namespace also runs Grafana, Loki, Alloy and Alertmanager, none of which
    scrapes the service (/metrics, and /debug/memory where debug is on); the controller's namespace
    may run other pods (kube-system everything, an ACME solver). None of them reaches either port."""
    c, app = world["cluster"], world["app"]
    for who in world["monitoring neighbours"] + [world["ingress neighbour"]]:
        for port in (world["http"], world["metrics"]):
            assert not c.allows(who, app, port), f"{world['name']}: {who.name} ({who.namespace}) -> app:{port}"


def test_the_app_resolves_names(world):
    c, app, dns = world["cluster"], world["app"], world["dns"]
    assert c.allows(app, dns, 53, "UDP") and c.allows(app, dns, 53, "TCP")
    assert not c.allows(app, dns, 80)


def test_helm_test_pod_reaches_the_app_and_nothing_else(world):
    c, app, test = world["cluster"], world["app"], world["test"]
    assert c.allows(test, app, world["http"]), "helm test cannot reach the service"
    assert not c.allows(test, app, world["metrics"])
    assert c.allows(test, world["dns"], 53, "UDP")
    assert not c.allows(test, world["neighbour"], 8080)
    assert not c.allows(test, world["internet"], 443)
    assert not c.allows(world["neighbour"], test, 8080), "nothing connects to the test pod"


def test_database_egress_goes_to_the_database_only():
    external = Cluster([d for d in render("postgres-external-monitoring") if d["kind"] == "NetworkPolicy"], NAMESPACES)
    app = pod(render("postgres-external-monitoring"), "Deployment")
    assert external.allows(app, Endpoint("db", None, {}, "10.20.30.40"), 5432)
    assert not external.allows(app, Endpoint("db", None, {}, "10.20.30.40"), 22)
    assert not external.allows(app, Endpoint("elsewhere", None, {}, "192.168.1.1"), 5432)
    docs = render("cloudnativepg-canary-hpa")
    cnpg = Cluster([d for d in docs if d["kind"] == "NetworkPolicy"], NAMESPACES)
    app = pod(docs, "Rollout")
    primary = Endpoint("db-1", NAMESPACE, {"cnpg.io/cluster": "devsecops-app-db"}, "10.42.1.30")
    assert cnpg.allows(app, primary, 5432)
    assert not cnpg.allows(app, Endpoint("other-db", NAMESPACE, {"cnpg.io/cluster": "other-db"}, "10.42.1.31"), 5432)
    sqlite = Cluster([d for d in render("default") if d["kind"] == "NetworkPolicy"], NAMESPACES)
    assert not sqlite.allows(pod(render("default"), "Deployment"), primary, 5432), "SQLite needs no database egress"


def test_the_evaluator_follows_the_api_semantics():
    """The evaluator itself on the reference cases: no policy allows all, an empty ingress list
    denies all, policies add up, a named port resolves on the destination."""
    a = Endpoint("a", "ns", {"app": "a"}, "10.0.0.1", {"web": (8080, "TCP")})
    b = Endpoint("b", "ns", {"app": "b"}, "10.0.0.2")
    meta = {"namespace": "ns", "name": "p"}
    assert Cluster([], {"ns": {}}).allows(b, a, 8080)
    deny = {"metadata": meta, "spec": {"podSelector": {"matchLabels": {"app": "a"}}, "ingress": []}}
    assert not Cluster([deny], {"ns": {}}).allows(b, a, 8080)
    allow = {"metadata": meta, "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}],
                                                                          "ports": [{"port": "web"}]}]}}
    both = Cluster([deny, allow], {"ns": {}})
    assert both.allows(b, a, 8080) and not both.allows(b, a, 8081)
    assert both.allows(a, b, 9999) is False, "b is selected by the allow policy and has no port named web"


# The IngressClass each target's controller answers to: k3s' Traefik chart makes `traefik`; the
# MicroK8s ingress addon makes `public` (its default class) and `nginx`.
CLASSES = {"k3s": {"traefik"}, "microk8s": {"public", "nginx"}}


@pytest.mark.parametrize("name", ["appliance", *MICROK8S])
def test_each_targets_ingress_uses_a_class_its_controller_serves(name):
    ingress = next(d for d in render(name) if d["kind"] == "Ingress")
    assert ingress["spec"]["ingressClassName"] in CLASSES[TARGET_OF[name]], ingress["spec"]["ingressClassName"]


def test_the_backup_job_reaches_nothing_and_nothing_reaches_it():
    """The backup pod works on volumes only: its own policy denies all, and the service's
    policies, which select the service's labels only, do not open it."""
    docs = render("sqlite-persistent-ingress")
    cluster = Cluster([d for d in docs if d["kind"] == "NetworkPolicy"], NAMESPACES)
    template = next(d for d in docs if d["kind"] == "CronJob")["spec"]["jobTemplate"]["spec"]["template"]
    backup = Endpoint("backup pod", NAMESPACE, template["metadata"]["labels"], "10.42.1.40", {"http": (8080, "TCP")})
    app = pod(docs, "Deployment")
    dns = Endpoint("coredns", "kube-system", {"k8s-app": "kube-dns"}, "10.42.0.2")
    for source, destination, port, protocol in ((backup, dns, 53, "UDP"), (backup, app, app.ports["http"][0], "TCP"),
                                                (backup, Endpoint("internet", None, {}, "203.0.113.9"), 443, "TCP"),
                                                (CONTROLLERS["k3s"], backup, 8080, "TCP"), (app, backup, 8080, "TCP")):
        assert not cluster.allows(source, destination, port, protocol), (source.name, destination.name, port)
    # The same cases without the backup policy: the pod would be open, so the check can fail.
    open_cluster = Cluster([d for d in docs if d["kind"] == "NetworkPolicy"
                            and not d["metadata"]["name"].endswith("-backup")], NAMESPACES)
    assert open_cluster.allows(backup, dns, 53, "UDP") and open_cluster.allows(CONTROLLERS["k3s"], backup, 8080)
