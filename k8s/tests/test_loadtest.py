"""The load test Job (loadTest: a helm test hook running the loadtest image), rendered and checked
offline: nothing of it by default, its command line exactly what the values say, its target (the
preview Service on blue-green), the token as a read-only file from the service's Secret, the pod
security every pod gets, what the NetworkPolicies let it reach, and the values the chart refuses
(the load test's own command-line bounds, and a rate the service's limit would refuse). The
whole-chart checks (Kubernetes schemas, Pod Security, checkov) take its renders too
(renders.LOADTEST_VALUE_SETS, test_chart.py)."""

import copy
import json
import os
import re

import pytest
import yaml

from netpol import Cluster, Endpoint
from renders import (CHART, ENVIRONMENTS, LOADTEST_VALUE_SETS, NAMESPACE, RELEASE, ROOT, VALUE_SETS, documents,
                     helm_template, run)
from test_chart import assert_restricted

ON = ["--set", "loadTest.enabled=true"]
JOB = f"{RELEASE}-loadtest"
LOADTEST_SRC = os.path.join(ROOT, "loadtest", "src")
with open(os.path.join(CHART, "values.yaml")) as f:
    DEFAULTS = yaml.safe_load(f)
with open(os.path.join(CHART, "values.schema.json")) as f:
    SCHEMA = json.load(f)["properties"]["loadTest"]["properties"]


def render(*args):
    out = helm_template(list(args))
    assert out.returncode == 0, out.stderr
    return documents(out.stdout)


def render_values(tmp_path, values, *args):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return render("-f", str(path), *args)


def job(docs):
    (found,) = [d for d in docs if d["kind"] == "Job"]
    return found


def container(docs):
    (found,) = job(docs)["spec"]["template"]["spec"]["containers"]
    return found


def arg(docs, flag):
    args = container(docs)["args"]
    assert args.count(flag) == 1, (flag, args)
    return args[args.index(flag) + 1]


def expected_args(values, host, token=True):
    """The command line the values stand for, in the Job's order: the loadtest's flags, then the
    extra arguments as given (goose options after --)."""
    args = ["--host", host, "--users", str(values["users"]), "--ramp-up", f"{values['rampUp']}s",
            "--duration", f"{values['duration']}s", "--think-time", values["thinkTime"], "--weights", values["weights"],
            "--page-size", str(values["pageSize"]), "--p95", values["p95"], "--max-error-rate", str(values["maxErrorRate"])]
    for rule in values["thresholds"]:
        args += ["--threshold", rule]
    args += ["--reports", "/reports"]
    if token:
        args += ["--token-file", "/var/run/secrets/devsecops-app/api-token"]
    return args + values["extraArgs"]


def test_nothing_is_rendered_by_default():
    """Off unless asked for: no Job, no policy, no admission of its pods, in the defaults and in
    every value set and environment (whose snapshots therefore stay as they were)."""
    assert DEFAULTS["loadTest"]["enabled"] is False
    for name, args in VALUE_SETS.items():
        docs = render(*args)
        text = yaml.safe_dump_all(docs)
        assert "loadtest" not in text, name
        assert not [d for d in docs if d["kind"] == "Job"], name
    docs = render(*ON)
    assert "loadtest" in yaml.safe_dump_all(docs) and job(docs)["metadata"]["name"] == JOB


def test_the_jobs_command_line_is_exactly_the_values(tmp_path):
    """Every value reaches its flag, in order, integers as integers (from a file, where Helm reads
    them as floats and would print large ones in exponent form), and the deadline is derived."""
    defaults = DEFAULTS["loadTest"]
    docs = render(*ON)
    assert container(docs)["args"] == expected_args(defaults, f"http://{RELEASE}:80")
    spec = job(docs)["spec"]
    assert spec["activeDeadlineSeconds"] == defaults["rampUp"] + defaults["duration"] + 120
    assert spec["ttlSecondsAfterFinished"] == defaults["ttlSecondsAfterFinished"]
    assert spec["backoffLimit"] == 0 and spec["template"]["spec"]["restartPolicy"] == "Never"
    assert container(docs)["image"] == "ghcr.io/devsecops-platform/devsecops-loadtest:0.1.0"

    values = {"enabled": True, "users": 7, "rampUp": 600000, "duration": 604800, "thinkTime": "500ms..2s",
              "weights": "2:1:1", "pageSize": 50, "p95": "off", "maxErrorRate": 0.5,
              "thresholds": ["p99<1s", "p95<100ms for GET /health"],
              "extraArgs": ["--", "--request-log", "/reports/requests.log"], "ttlSecondsAfterFinished": 2000000,
              "image": {"repository": "r.example/loadtest", "tag": "9.9.9", "digest": "", "pullPolicy": "Always"}}
    docs = render_values(tmp_path, {"loadTest": values, "service": {"port": 8081}})
    assert container(docs)["args"] == expected_args(values, f"http://{RELEASE}:8081")
    assert job(docs)["spec"]["activeDeadlineSeconds"] == 600000 + 604800 + 120
    assert job(docs)["spec"]["ttlSecondsAfterFinished"] == 2000000
    assert container(docs)["image"] == "r.example/loadtest:9.9.9" and container(docs)["imagePullPolicy"] == "Always"
    assert container(docs)["resources"] == defaults["resources"]
    digest = "sha256:" + "d" * 64
    pinned = render(*ON, "--set", f"loadTest.image.digest={digest}", "--set", "loadTest.maxErrorRate=off")
    assert container(pinned)["image"] == f"ghcr.io/devsecops-platform/devsecops-loadtest@{digest}"
    assert arg(pinned, "--max-error-rate") == "off"


def test_it_is_a_helm_test_hook_run_by_its_name_after_its_policy():
    """`helm test --filter name=<release>-loadtest` selects hooks by name (helm pkg/action/
    release_testing.go), whatever their kind: the Job and its NetworkPolicy share the name, the health
    test's hooks do not. Helm runs them by weight: the policy first; unfiltered, the health test
    before the load. The Job is kept for its log (no hook-succeeded deletion)."""
    docs = render(*ON)
    hooks = [d for d in docs if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    selected = sorted((int(d["metadata"]["annotations"]["helm.sh/hook-weight"]), d["kind"])
                      for d in hooks if d["metadata"]["name"] == JOB)
    assert [kind for _, kind in selected] == ["NetworkPolicy", "Job"]
    assert selected[0][0] < selected[1][0]
    health = next(d for d in hooks if d["kind"] == "Pod")
    assert int(health["metadata"]["annotations"]["helm.sh/hook-weight"]) < selected[1][0]
    annotations = job(docs)["metadata"]["annotations"]
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert annotations["helm.sh/hook-output-log-policy"] == "hook-succeeded,hook-failed"


def test_the_hooks_keep_the_release_name_the_pipelines_filter_by_under_any_override():
    """scripts/deploy-lib.sh LOAD_TEST_HOOK is "<release>-loadtest": a fullnameOverride that renamed
    the hooks would let the deploy's `--filter '!name=...'` miss them and run the load test."""
    with open(os.path.join(ROOT, "scripts", "deploy-lib.sh")) as f:
        assert 'LOAD_TEST_HOOK="$RELEASE-loadtest"' in f.read()
    for override in ([], ["--set", "fullnameOverride=renamed"], ["--set", "nameOverride=other"]):
        docs = render(*ON, *override)
        names = {(d["kind"], d["metadata"]["name"]) for d in docs if "loadtest" in d["metadata"]["name"]}
        assert names == {("Job", f"{RELEASE}-loadtest"), ("NetworkPolicy", f"{RELEASE}-loadtest")}, names


def test_it_loads_the_service_the_health_test_checks():
    """The release's Service, and on blue-green the preview Service (the version being deployed), as
    the health test pod; loadTest.host replaces it as given."""
    for args, service in (([], RELEASE), (VALUE_SETS["blue-green"], f"{RELEASE}-preview"),
                          (VALUE_SETS["staging"], RELEASE), (VALUE_SETS["production"], f"{RELEASE}-preview")):
        docs = render(*args, *ON)
        assert arg(docs, "--host") == f"http://{service}:80"
        health = next(d for d in docs if d["kind"] == "Pod")
        assert {c["args"][1].rsplit("/", 1)[0] for c in health["spec"]["containers"]} == {f"http://{service}:80"}
        services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
        assert services[service]["spec"]["ports"][0]["port"] == 80
    docs = render(*ON, "--set", "loadTest.host=https://devsecops-app.example.com")
    assert arg(docs, "--host") == "https://devsecops-app.example.com"


def token_volume(spec):
    return next((v for v in spec.get("volumes", []) if "secret" in v), None)


@pytest.mark.parametrize("auth", [[], ["--set", "auth.existingSecret=token", "--set", "auth.existingSecretKey=key"]])
def test_the_token_is_the_services_secret_as_a_read_only_file(auth):
    """Sign-up reads the same Secret and key the service mounts, as a file (never an environment
    variable), read-only; read-only weights mount nothing."""
    docs = render(*auth, *ON)
    pod = job(docs)["spec"]["template"]["spec"]
    app = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert token_volume(pod)["secret"] == next(v for v in app["volumes"] if v["name"] == "api-token")["secret"]
    assert token_volume(pod)["secret"]["secretName"] == ("token" if auth else f"{RELEASE}-auth")
    (mount,) = [m for m in container(docs)["volumeMounts"] if m["name"] == token_volume(pod)["name"]]
    assert mount["readOnly"] is True
    (item,) = token_volume(pod)["secret"]["items"]
    assert arg(docs, "--token-file") == f"{mount['mountPath']}/{item['path']}"
    assert not container(docs).get("env") and not container(docs).get("envFrom")
    read_only = render(*auth, *ON, "--set", "loadTest.weights=3:0:1")
    assert token_volume(job(read_only)["spec"]["template"]["spec"]) is None
    assert "--token-file" not in container(read_only)["args"]


def test_the_pod_meets_pod_security_restricted_like_every_pod():
    """The checks every pod of the chart gets (test_chart.py), and the same security contexts as the
    service's pod, no service account token, no service links; a weakened copy fails them."""
    for name, args in LOADTEST_VALUE_SETS.items():
        docs = render(*args)
        pod = job(docs)["spec"]["template"]["spec"]
        assert_restricted(f"{name} Job", pod)
        app = next(d for d in docs if d["kind"] in ("Deployment", "Rollout"))["spec"]["template"]["spec"]
        assert pod["securityContext"] == app["securityContext"], name
        assert pod["containers"][0]["securityContext"] == app["containers"][0]["securityContext"], name
        assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False, name
        assert {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]} >= {"/reports"}
        assert next(v for v in pod["volumes"] if v["name"] == "reports")["emptyDir"]
    weakened = copy.deepcopy(pod)
    weakened["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    with pytest.raises(AssertionError):
        assert_restricted("weakened", weakened)


NAMESPACES = {NAMESPACE: {}, "kube-system": {}, "other": {}}
DNS = Endpoint("coredns", "kube-system", {"k8s-app": "kube-dns"}, "10.42.0.2")
TRAEFIK = Endpoint("traefik", "kube-system", {"app.kubernetes.io/name": "traefik"}, "10.42.0.5",
                   {"web": (8000, "TCP"), "websecure": (8443, "TCP")})
NEIGHBOUR = Endpoint("neighbour", NAMESPACE, {"app": "other"}, "10.42.1.20", {"http": (8080, "TCP")})
INTERNET = Endpoint("internet", None, {}, "203.0.113.9")


def world(*args):
    docs = render(*args)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    app_template = next(d for d in docs if d["kind"] in ("Deployment", "Rollout"))["spec"]["template"]
    ports = {p["name"]: (p["containerPort"], p["protocol"]) for p in app_template["spec"]["containers"][0]["ports"]}
    app = Endpoint("app", NAMESPACE, app_template["metadata"]["labels"], "10.42.1.10", ports)
    loadtest = Endpoint("loadtest", NAMESPACE, job(docs)["spec"]["template"]["metadata"]["labels"], "10.42.1.50")
    return docs, policies, app, loadtest


def test_the_job_reaches_the_services_http_port_and_nothing_else():
    """Through the Service: DNS and the release's pods on the HTTP port, admitted by the service's
    ingress policy; not the metrics port, a neighbour or the internet; nothing connects to it. The
    Service and the service's policies do not select its pod. Each half can fail: without the Job's
    policy it reaches the internet, without its admission it does not reach the service."""
    for name in ("default", "blue-green", *ENVIRONMENTS):
        docs, policies, app, loadtest = world(*VALUE_SETS[name], *ON)
        cluster = Cluster(policies, NAMESPACES)
        http, metrics = app.ports["http"][0], app.ports["metrics"][0]
        assert cluster.allows(loadtest, app, http)
        assert cluster.allows(loadtest, DNS, 53, "UDP") and cluster.allows(loadtest, DNS, 53, "TCP")
        assert not cluster.allows(loadtest, app, metrics)
        assert not cluster.allows(loadtest, NEIGHBOUR, 8080)
        assert not cluster.allows(loadtest, INTERNET, 443)
        assert not cluster.allows(app, loadtest, 8080) and not cluster.allows(NEIGHBOUR, loadtest, 8080)
        for service in (d for d in docs if d["kind"] == "Service"):
            selector = service["spec"].get("selector") or {}
            assert not all(loadtest.labels.get(k) == v for k, v in selector.items()), service["metadata"]["name"]
        for policy in policies:
            if policy["metadata"]["name"] != JOB:
                labels = policy["spec"]["podSelector"]["matchLabels"]
                assert not all(loadtest.labels.get(k) == v for k, v in labels.items()), policy["metadata"]["name"]
        unguarded = Cluster([p for p in policies if p["metadata"]["name"] != JOB], NAMESPACES)
        assert unguarded.allows(loadtest, INTERNET, 443)
        # The service's ingress policy without the peer naming the Job's pod.
        selector = job(docs)["spec"]["template"]["metadata"]["labels"].copy()
        selector.pop("app.kubernetes.io/version")
        unadmitted = copy.deepcopy(policies)
        for rule in (r for p in unadmitted for r in p["spec"].get("ingress", [])):
            rule["from"] = [peer for peer in rule["from"] if peer.get("podSelector", {}).get("matchLabels") != selector]
        assert unadmitted != policies
        assert not Cluster(unadmitted, NAMESPACES).allows(loadtest, app, http)


@pytest.mark.parametrize("host, port", [("https://devsecops-app.example.com", 443),
                                        ("http://devsecops-app.example.com/", 80),
                                        ("https://10.0.0.7:8443", 8443)])
def test_an_ingress_url_opens_its_port_and_the_ingress_controller_only(host, port):
    """With loadTest.host the address behind the URL is unknown when rendering: the URL's port to
    any address, and the ingress controller's pods (the policy may see the connection after host
    ports or kube-proxy rewrote it to the controller's container port). Not other ports, not the
    service's pods directly (its ingress policy no longer admits the Job), not a neighbour."""
    docs, policies, app, loadtest = world(*ON, "--set", f"loadTest.host={host}")
    cluster = Cluster(policies, NAMESPACES)
    assert arg(docs, "--host") == host
    assert cluster.allows(loadtest, INTERNET, port)
    assert cluster.allows(loadtest, TRAEFIK, 8443) and cluster.allows(loadtest, TRAEFIK, 8000)
    assert cluster.allows(loadtest, DNS, 53, "UDP")
    for other in (22, 5432, 8080):
        assert not cluster.allows(loadtest, INTERNET, other), other
    assert not cluster.allows(loadtest, app, app.ports["http"][0])
    # Nor would the service's own policies admit it, whatever the Job's egress.
    others = Cluster([p for p in policies if p["metadata"]["name"] != JOB], NAMESPACES)
    assert not others.allows(loadtest, app, app.ports["http"][0])
    assert not cluster.allows(loadtest, NEIGHBOUR, 8080)
    # A pod labelled like the controller outside its namespace is not the controller.
    assert not cluster.allows(loadtest, Endpoint("stranger", "other", {"app.kubernetes.io/name": "traefik"},
                                                 "10.42.3.3"), 9000)


def schema_refused(args):
    out = helm_template([*ON, *args])
    return out.returncode != 0 and ("schema" in out.stderr or "values don't meet" in out.stderr), out.stderr


def test_the_values_schema_refuses_what_the_load_test_refuses():
    """Weights, think times, users and the rest outside what the loadtest command line accepts are
    refused by the schema; values at its bounds render."""
    bad = [("weights", "0:0:0"), ("weights", "3:1"), ("weights", "3:1:1:1"), ("weights", "a:1:1"),
           ("weights", "1:1:5000"), ("weights", "-1:1:1"), ("thinkTime", "fast"), ("thinkTime", "1.5s"),
           ("thinkTime", "100ms.."), ("thinkTime", "1s-2s"), ("thinkTime", "1d"), ("users", "-1"), ("users", "0"),
           ("users", "100001"), ("rampUp", "-1"), ("duration", "0"), ("duration", "604801"), ("pageSize", "0"),
           ("pageSize", "101"), ("p95", "0ms"), ("p95", "fast"), ("maxErrorRate", "100"), ("maxErrorRate", "-1"),
           ("maxErrorRate", "lots"), ("host", "ftp://x"), ("host", "http://x/api"), ("host", "http://u:p@x"),
           ("ttlSecondsAfterFinished", "0"), ("image.digest", "latest"), ("unknown", "1")]
    numbers = ("users", "rampUp", "duration", "pageSize", "maxErrorRate", "ttlSecondsAfterFinished", "unknown")
    for key, value in bad:
        flag = "--set" if key in numbers else "--set-string"
        refused, stderr = schema_refused([flag, f"loadTest.{key}={value}"])
        assert refused, f"loadTest.{key}={value} accepted: {stderr}"
    good = [("weights", "1000:0:0"), ("weights", "0:0:1"), ("thinkTime", "250ms"), ("thinkTime", "0..1h"),
            ("thinkTime", "5"),
            ("users", "3"), ("rampUp", "0"), ("duration", "1"), ("pageSize", "100"), ("p95", "off"), ("p95", "2s"),
            ("maxErrorRate", "0"), ("maxErrorRate", "99.9"), ("maxErrorRate", "off"),
            ("host", "https://[2001:db8::1]:8443/")]
    for key, value in good:
        extra = ["--set", "loadTest.weights=0:0:1"] if key == "thinkTime" else []
        flag = "--set" if key in numbers else "--set-string"
        out = helm_template([*ON, *extra, flag, f"loadTest.{key}={value}"])
        assert out.returncode == 0, f"loadTest.{key}={value}: {out.stderr}"


def test_the_schemas_bounds_are_the_command_lines():
    """The schema's numbers are the loadtest's own (its clap ranges, the weight parser's 1000 and the
    time parser's week), read from its source, so a change there shows here."""
    main = open(os.path.join(LOADTEST_SRC, "main.rs")).read()
    scenarios = open(os.path.join(LOADTEST_SRC, "scenarios.rs")).read()

    def clap_range(field):
        found = re.search(rf"range\(([0-9_]+)\.\.=([0-9_]+)\)\)]\s*{field}: u32", main)
        assert found, field
        return int(found.group(1).replace("_", "")), int(found.group(2).replace("_", ""))

    assert (SCHEMA["users"]["minimum"], SCHEMA["users"]["maximum"]) == clap_range("users")
    assert (SCHEMA["pageSize"]["minimum"], SCHEMA["pageSize"]["maximum"]) == clap_range("page_size")
    week = re.search(r"if millis > ([0-9]+) \* ([0-9]+) \* ([0-9_]+) \{", main)
    assert week, "the time parser's bound"
    week_s = int(week.group(1)) * int(week.group(2)) * int(week.group(3).replace("_", "")) // 1000
    assert SCHEMA["rampUp"]["maximum"] == SCHEMA["duration"]["maximum"] == week_s
    assert re.search(r"\.filter\(\|w\| \*w <= 1_000\)", scenarios), "the weight parser's bound"
    assert "(1000|[0-9]{1,3})" in SCHEMA["weights"]["pattern"]
    assert re.search(r"!\(0\.0\.\.100\.0\)\.contains\(&percent\)", main), "the percent parser's bounds"
    assert SCHEMA["maxErrorRate"]["oneOf"][0] == {"type": "number", "minimum": 0, "exclusiveMaximum": 100}


def test_the_templates_refuse_what_the_schema_cannot_judge():
    cases = {
        "MIN is above MAX": ["--set", "loadTest.thinkTime=2s..1s"],
        "longer than a week": ["--set", "loadTest.thinkTime=169h"],
        "loadTest.p95 \"169h\": longer than a week": ["--set", "loadTest.p95=169h"],
        "each of the 3 scenarios weighted above 0": ["--set", "loadTest.users=2"],
        "port 70000 is not a TCP port": ["--set", "loadTest.host=http://x:70000"],
    }
    for message, args in cases.items():
        out = helm_template([*ON, *args])
        assert out.returncode != 0 and message in out.stderr, f"{args}: {out.stderr}"
    assert helm_template([*ON, "--set", "loadTest.thinkTime=168h", "--set", "loadTest.users=3"]).returncode == 0
    assert helm_template([*ON, "--set", "loadTest.users=2", "--set", "loadTest.weights=1:0:1"]).returncode == 0


@pytest.mark.parametrize("weights, users, think, limit, rate", [
    # A browse user sends at most 3 API requests per 2 think times: 1.5 per think time.
    ("3:1:1", 33, "1s..3s", 50, None), ("3:1:1", 34, "1s..3s", 50, 51), ("3:1:1", 100, "1s..3s", 50, 150),
    ("1:0:0", 10, "100ms..500ms", 50, 150), ("1:0:0", 10, "300ms", 50, None),
    # Sign-up alone: 1 per think time.
    ("0:1:1", 50, "1s", 50, None), ("0:1:1", 51, "1s", 50, 51),
    # /health is not rate-limited, nor is anything with the limit off.
    ("0:0:1", 1000, "0..1s", 50, None), ("3:1:1", 1000, "0..1s", 0, None),
])
def test_a_rate_the_service_would_refuse_is_refused(weights, users, think, limit, rate):
    """The Job is one client address to the service's rate limiter, through the Service and through
    the ingress alike: users times the heaviest API scenario's requests per minimum think time must
    stay within app.rateLimitPerSecond."""
    out = helm_template([*ON, "--set", f"loadTest.weights={weights}", "--set", f"loadTest.users={users}",
                         "--set", f"loadTest.thinkTime={think}", "--set", f"app.rateLimitPerSecond={limit}"])
    if rate is None:
        assert out.returncode == 0, out.stderr
    else:
        assert out.returncode != 0, f"{users} users at {think} accepted"
        assert f"up to {rate} API requests per second" in out.stderr and f"app.rateLimitPerSecond={limit}" in out.stderr
    # Through the ingress the same.
    via_ingress = helm_template([*ON, "--set", f"loadTest.weights={weights}", "--set", f"loadTest.users={users}",
                                 "--set", f"loadTest.thinkTime={think}", "--set", f"app.rateLimitPerSecond={limit}",
                                 "--set", "loadTest.host=https://devsecops-app.example.com"])
    assert (via_ingress.returncode == 0) == (rate is None)


def test_a_minimum_think_time_of_zero_is_refused_with_a_rate_limit():
    out = helm_template([*ON, "--set", "loadTest.thinkTime=0..1s"])
    assert out.returncode != 0 and "unbounded by app.rateLimitPerSecond=50" in out.stderr, out.stderr


def test_helm_lint_strict_with_the_load_test():
    for args in ([*ON], [*ON, "--set", "loadTest.host=https://devsecops-app.example.com"]):
        out = run(["helm", "lint", "--strict", CHART, *args])
        assert out.returncode == 0, f"{args}: {out.stdout}{out.stderr}"


def duration_seconds(text):
    return sum(int(n) * {"s": 1, "m": 60, "h": 3600}[unit] for n, unit in re.findall(r"([0-9]+)([smh])", text))


def test_the_documented_and_noted_commands_exist_and_wait_long_enough():
    """docs/kubernetes.md's section and the install notes: every command exists as written (checked
    as test_troubleshooting.py checks the guide: helm's and kubectl's own help), and the helm test
    --timeout they give outlasts the Job's deadline for the values they set."""
    from test_troubleshooting import check, commands, shell_blocks
    doc = os.path.join(ROOT, "docs", "kubernetes.md")
    text = open(doc).read()
    start = text.index("## Load test from inside the cluster")
    lines = (text[:start].count("\n"), text[:text.index("\n## ", start + 1)].count("\n"))
    blocks = [script for line, script in shell_blocks(doc) if lines[0] < line < lines[1]]
    assert blocks, "the section's sh block"
    notes = run(["helm", "install", RELEASE, CHART, "--namespace", NAMESPACE, "--dry-run=client", *ON])
    assert notes.returncode == 0, notes.stderr
    noted = "\n".join(line.strip() for line in notes.stdout.split("NOTES:", 1)[1].splitlines()
                      if line.startswith("  helm test") or line.startswith("  kubectl"))
    checked, timeouts = [], []
    for script, values in [(b, None) for b in blocks] + [(noted, [])]:
        for _, words in commands(script):
            assert not check(words), (words, check(words))
            checked.append(words)
            if words[:2] == ["helm", "test"] and "--filter" in words:
                assert words[words.index("--filter") + 1] == f"name={JOB}"
                timeouts.append((duration_seconds(words[words.index("--timeout") + 1]), values, script))
    assert [w for w in checked if w[0] == "kubectl" and "logs" in w] and [w for w in checked if w[:2] == ["helm", "upgrade"]]
    for timeout, values, script in timeouts:
        if values is None:  # the documented run: the --set values of its helm upgrade
            values = re.findall(r"--set (loadTest\.\S+)", script)
        args = [*ON, *[w for v in values for w in ("--set", v)]]
        deadline = job(render(*args))["spec"]["activeDeadlineSeconds"]
        assert timeout > deadline, (timeout, deadline, values)
    assert len(timeouts) == 2
