"""End to end: the real Prometheus server with the project's rules scrapes the real service while the
test drives normal traffic, a burst of 401s and a burst of 5xx (a PostgreSQL outage through a proxy
the test cuts). Everything listens on loopback; every loop is bounded in time.

Needs: the service binary (DEVSECOPS_APP_BIN, default target/debug/devsecops-app), `prometheus` on
PATH, and PostgreSQL at TEST_POSTGRES_URL (scripts/test.sh provides all three).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

from conftest import DASHBOARDS, ROOT, RULES, load_yaml

APP_BIN = os.environ.get("DEVSECOPS_APP_BIN", os.path.join(ROOT, "target", "debug", "devsecops-app"))
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL",
                              "postgres://devsecops_test:devsecops_test@127.0.0.1:5432/postgres")
TOKEN = "e2e-" + os.urandom(16).hex()
ALL_ALERTS = {r["alert"] for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Proxy:
    """TCP proxy to PostgreSQL; `cut()` closes every connection and refuses new ones."""

    def __init__(self, target):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.sockets = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.open = False
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.sockets.clear()

    def close(self):
        self.cut()
        self.listener.close()


def http(method, url, body=None, headers=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def stack():
    if not os.path.exists(APP_BIN):
        pytest.fail(f"{APP_BIN} is missing: build it with cargo build -p devsecops-app")
    if not shutil.which("prometheus"):
        pytest.fail("prometheus is not on PATH: scripts/test.sh installs it (apt-get install prometheus)")
    workdir = tempfile.mkdtemp(prefix="devsecops-e2e-")
    admin = POSTGRES_URL
    database = f"test_e2e_{os.getpid()}"
    subprocess.run(["psql", "-q", admin, "-c", f"DROP DATABASE IF EXISTS {database}", "-c",
                    f"CREATE DATABASE {database}"], check=True, capture_output=True)
    parsed = urllib.parse.urlsplit(admin)
    proxy = Proxy((parsed.hostname, parsed.port or 5432))
    app_url = admin.rsplit("@", 1)[0] + f"@127.0.0.1:{proxy.port}/{database}"

    app_port, metrics_port = free_port(), free_port()
    app_log = open(os.path.join(workdir, "app.log"), "wb")
    app = subprocess.Popen([APP_BIN], stdout=app_log, stderr=subprocess.STDOUT, env={
        "PATH": os.environ["PATH"], "PORT": str(app_port), "METRICS_PORT": str(metrics_port), "HOST": "127.0.0.1",
        "DATABASE_URL": app_url,
        "API_TOKEN": TOKEN, "RATE_LIMIT_PER_SECOND": "0", "REQUEST_TIMEOUT_MS": "3000",
        "DB_ACQUIRE_TIMEOUT_MS": "500", "DB_STATEMENT_TIMEOUT_MS": "1000"})
    base = f"http://127.0.0.1:{app_port}"
    wait_until(lambda: _status(base + "/ready") == 200, 20, "the service to be ready")

    prom_port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [RULES],
        "scrape_configs": [{"job_name": "devsecops-app", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }
    config_path = os.path.join(workdir, "prometheus.yml")
    with open(config_path, "w") as f:
        yaml.safe_dump(config, f)
    prom_log = open(os.path.join(workdir, "prometheus.log"), "wb")
    prom = subprocess.Popen(["prometheus", f"--config.file={config_path}",
                             f"--storage.tsdb.path={os.path.join(workdir, 'tsdb')}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=prom_log, stderr=subprocess.STDOUT)
    prom_url = f"http://127.0.0.1:{prom_port}"
    try:
        wait_until(lambda: _status(prom_url + "/-/ready") == 200, 30, "Prometheus to be ready")
        yield {"app": base, "prometheus": prom_url, "proxy": proxy}
    finally:
        for process in (prom, app):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        proxy.close()
        app_log.close()
        prom_log.close()
        subprocess.run(["psql", "-q", admin, "-c", f"DROP DATABASE IF EXISTS {database}"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _status(url):
    try:
        return http("GET", url, timeout=2)[0]
    except OSError:
        return None


def query(stack, expr):
    url = f"{stack['prometheus']}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = http("GET", url)
    return status, json.loads(body)


def vector(stack, expr):
    status, body = query(stack, expr)
    assert status == 200 and body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]


def active_alerts(stack):
    status, body = http("GET", stack["prometheus"] + "/api/v1/alerts")
    assert status == 200
    return {a["labels"]["alertname"]: a["state"] for a in json.loads(body)["data"]["alerts"]}


def wait_for_alerts(stack, expected, timeout=20):
    """Waits until every alert in `expected` is pending or firing; returns all active alerts."""
    seen = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = active_alerts(stack)
        if expected <= set(seen):
            return seen
        time.sleep(0.25)
    raise AssertionError(f"after {timeout} s, active: {seen}; missing: {expected - set(seen)}")


def scraped_since(stack, moment):
    """Waits until Prometheus has scraped the service after `moment` and evaluated the rules on it."""
    def fresh():
        result = vector(stack, 'timestamp(up{job="devsecops-app"})')
        return result and float(result[0]["value"][1]) > moment + 1
    wait_until(fresh, 20, "a fresh scrape")
    time.sleep(2.5)  # two rule evaluations at 1 s


def normal_traffic(stack, seconds):
    app, auth = stack["app"], {"Authorization": f"Bearer {TOKEN}"}
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        n += 1
        status, body = http("POST", app + "/api/users", {"name": f"User {n}", "email": f"u{n}-{os.getpid()}@example.com"},
                            auth)
        assert status == 201, body
        user = json.loads(body)
        assert http("GET", f"{app}/api/users/{user['id']}")[0] == 200
        assert http("GET", app + "/api/users?limit=20")[0] == 200
        time.sleep(0.05)
    return n


def test_alerts_follow_traffic_and_every_expression_evaluates(stack):
    # 1. Normal traffic: the series exist with the expected labels, and nothing fires.
    started = time.time()
    normal_traffic(stack, 8)
    scraped_since(stack, started)
    series = vector(stack, 'http_requests_total{job="devsecops-app", endpoint="/api/users/{id}", method="GET", status="200"}')
    assert series, "requests by route template"
    assert vector(stack, 'http_request_duration_seconds_bucket{job="devsecops-app", endpoint="/api/users", le="0.25"}')
    assert vector(stack, 'app_build_info{job="devsecops-app"}')[0]["metric"]["version"]
    assert vector(stack, 'app_db_up{job="devsecops-app"}')[0]["value"][1] == "1"
    assert vector(stack, 'app_db_pool_connections{job="devsecops-app", state="idle"}')
    assert vector(stack, 'process_resident_memory_bytes{job="devsecops-app"}')
    ratio = vector(stack, "namespace_job:slo_availability_errors:ratio_rate5m")
    assert ratio and float(ratio[0]["value"][1]) == 0.0, ratio
    labels = {tuple(sorted(s["metric"])) for s in vector(stack, 'http_requests_total{job="devsecops-app"}')}
    assert labels == {("__name__", "endpoint", "instance", "job", "method", "status")}, labels
    assert active_alerts(stack) == {}, "alerts during normal traffic"

    # 2. A burst of 401s: the failed-authentication alert goes pending; 401s are not server errors.
    started = time.time()
    for i in range(150):
        status, _ = http("POST", stack["app"] + "/api/users", {"name": "x", "email": f"x{i}@example.com"},
                         {"Authorization": "Bearer guessed-wrong"})
        assert status == 401
        time.sleep(0.02)
    scraped_since(stack, started)
    failures = vector(stack, 'app_auth_failures_total{job="devsecops-app", reason="invalid"}')
    assert float(failures[0]["value"][1]) == 150
    alerts = wait_for_alerts(stack, {"DevsecopsAppAuthFailureSpike"})
    assert alerts["DevsecopsAppAuthFailureSpike"] in {"pending", "firing"}
    assert set(alerts) == {"DevsecopsAppAuthFailureSpike"}, alerts

    # 3. A burst of 5xx: the database goes away. Error-rate, budget-burn and database alerts go
    #    pending; latency, target, scanner, rate-limit and crash alerts stay silent.
    started = time.time()
    stack["proxy"].cut()
    # Spread over several scrapes: a counter that appears already at its final value has no rate.
    for _ in range(120):
        status, _ = http("GET", stack["app"] + "/api/users?limit=20")
        assert status == 503
        time.sleep(0.05)
    assert http("GET", stack["app"] + "/ready")[0] == 503
    scraped_since(stack, started)
    expected = {
        "DevsecopsAppAuthFailureSpike",
        "DevsecopsAppHighErrorRate",
        "DevsecopsAppAvailabilityBudgetBurnFast",
        "DevsecopsAppAvailabilityBudgetBurnSlow",
        "DevsecopsAppDatabaseNotReady",
    }
    alerts = wait_for_alerts(stack, expected)
    assert set(alerts) == expected, f"unexpected: {set(alerts) - expected}"
    assert all(state in {"pending", "firing"} for state in alerts.values())
    silent = ALL_ALERTS - expected
    assert silent >= {"DevsecopsAppHighLatency", "DevsecopsAppTargetDown", "DevsecopsAppScannerProbing",
                      "DevsecopsAppRateLimitingSpike", "DevsecopsAppCrashLooping"}
    errors = vector(stack, 'http_requests_total{job="devsecops-app", endpoint="/api/users", status="503"}')
    assert float(errors[0]["value"][1]) >= 120

    # 4. Every PromQL expression of every rule and dashboard evaluates without error here.
    expressions = [(r.get("alert") or r["record"], r["expr"])
                   for g in load_yaml(RULES)["groups"] for r in g["rules"]]
    for name in sorted(os.listdir(DASHBOARDS)):
        with open(os.path.join(DASHBOARDS, name)) as f:
            dashboard = json.load(f)
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                if target["datasource"]["type"] == "prometheus":
                    expressions.append((f"{name}: {panel['title']}", grafana_to_promql(target["expr"])))
    assert len(expressions) > 40
    for where, expr in expressions:
        status, body = query(stack, expr)
        assert status == 200 and body["status"] == "success", f"{where}: {body.get('error')}"
    # And the RED panels show this traffic.
    rate = vector(stack, grafana_to_promql(
        'sum by (endpoint) (rate(http_requests_total{job="$job"}[$__rate_interval]))'))
    assert {s["metric"]["endpoint"] for s in rate} >= {"/api/users", "/api/users/{id}", "/metrics"}


def grafana_to_promql(expr):
    """Replaces Grafana's variables with what Grafana would send for this test's data."""
    return (expr.replace("$__rate_interval", "1m").replace("$__interval", "15s").replace("$__range", "5m")
            .replace("$job", "devsecops-app"))


def test_grafana_substitution_leaves_no_variables():
    for name in os.listdir(DASHBOARDS):
        with open(os.path.join(DASHBOARDS, name)) as f:
            dashboard = json.load(f)
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                if target["datasource"]["type"] == "prometheus":
                    assert not re.search(r"\$\w", grafana_to_promql(target["expr"])), target["expr"]
