"""Every rendered configuration starts: each pod spec of the service's image that the chart renders
(every value set and overlay of k8s/tests/renders.py, the appliance's and the MicroK8s path's values
included), the `app` service of compose.yaml and the NixOS module's unit run in the real Docker
engine as their runtime would run them (tests/render/runtime.py), pass that runtime's probes or
health checks, and stop cleanly within their grace period. A value the binary refuses fails here
with the binary's own message. The renders run in parallel, one Docker network each.

Needs: the image (DEVSECOPS_IMAGE, built by scripts/build-image.sh), helm and kubectl, docker-compose,
nix-instantiate with nixpkgs' lib (NIXPKGS_LIB, default ../shared/nixpkgs-lib), and PostgreSQL at
TEST_POSTGRES_URL with its admin reachable through scripts/lib.sh's as_postgres (scripts/test.sh
provides all of them).
"""

import concurrent.futures
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "k8s", "tests"))

from renders import ENVIRONMENTS, RELEASE, VALUE_SETS, documents, helm_template, kustomize  # noqa: E402
from runtime import (Cluster, ComposeRun, Network, PodRun, RunError, SystemdRun, docker, log_errors,  # noqa: E402
                     logs, remove_leftovers)

IMAGE = os.environ.get("DEVSECOPS_IMAGE", "devsecops-app:dev")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://devsecops_test:devsecops_test@127.0.0.1:5432/postgres")
NIXPKGS_LIB = os.environ.get("NIXPKGS_LIB") or os.path.join(os.path.dirname(ROOT), "shared", "nixpkgs-lib")
RUN_ID = f"{os.getpid()}-{secrets.token_hex(2)}"
WORKLOADS = ("Deployment", "Rollout")
UNRUNNABLE = ("StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet")


def chart_renders():
    """Every render of the chart, made as an install makes it (no fixed token: the chart's own)."""
    renders = {}
    for name, args in VALUE_SETS.items():
        out = helm_template(args, token=[])
        assert out.returncode == 0, f"{name}: {out.stderr}"
        renders[f"helm-{name}"] = documents(out.stdout)
    for env in ENVIRONMENTS:
        renders[f"kustomize-{env}"] = kustomize(env)
    return renders


RENDERS = chart_renders()
RUNS = sorted(RENDERS) + ["compose-app", "nixos-module"]


def sql_admin(statements):
    """SQL as PostgreSQL's superuser, through scripts/lib.sh (root or sudo), for roles."""
    script = f"source {ROOT}/scripts/lib.sh && as_postgres psql -q -v ON_ERROR_STOP=1 -p \"$PG_PORT\""
    out = subprocess.run(["bash", "-c", script], input=statements, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


class Databases:
    """A database per render on the local PostgreSQL, reached from the render's network through a
    forwarder on its gateway: what a cluster's database (external, or CloudNativePG's) provides."""

    def __init__(self):
        self.created = []
        self.admin = urllib.parse.urlsplit(POSTGRES_URL)

    def url_for(self, render):
        made = {}

        def make(network):
            if network.name in made:
                return made[network.name]
            name = f"test_render_{render.replace('-', '_')}_{RUN_ID.replace('-', '_')}"[:63]
            subprocess.run(["psql", "-q", POSTGRES_URL, "-c", f"DROP DATABASE IF EXISTS {name}", "-c",
                            f"CREATE DATABASE {name}"], check=True, capture_output=True)
            self.created.append(name)
            port = network.forward(0, lambda: (self.admin.hostname, self.admin.port or 5432))
            made[network.name] = f"postgres://{self.admin.username}:{self.admin.password}@{network.gateway}:{port}/{name}"
            return made[network.name]
        return make

    def drop(self):
        for name in self.created:
            subprocess.run(["psql", "-q", POSTGRES_URL, "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                           capture_output=True)


def pods_of(docs):
    """(kind, name, namespace, pod spec, labels, is helm test) for every pod the render makes."""
    for doc in docs:
        kind, meta = doc["kind"], doc["metadata"]
        if kind in WORKLOADS:
            template = doc["spec"]["template"]
            yield kind, meta["name"], meta.get("namespace", "default"), template["spec"], \
                template["metadata"].get("labels", {}), False
        elif kind == "Pod":
            hook = meta.get("annotations", {}).get("helm.sh/hook", "")
            if hook != "test":
                raise RunError(f"Pod {meta['name']} is not a helm test hook: not emulated")
            yield kind, meta["name"], meta.get("namespace", "default"), doc["spec"], meta.get("labels", {}), True
        elif kind in UNRUNNABLE:
            raise RunError(f"{kind} {meta['name']}: not emulated")


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def run_chart_render(name, docs, databases, workdir):
    """Starts every workload's pod, waits for it to be ready, runs the helm test pods through the
    rendered Services, then deletes the pods as the kubelet does. Returns a summary."""
    objects = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"] in ("ConfigMap", "Secret")}
    network = Network(f"render-{RUN_ID}-{name}"[:60])
    cluster = Cluster(databases.url_for(name))
    apps, tests, summary = [], [], {}
    try:
        for kind, pod_name, namespace, spec, labels, is_test in pods_of(docs):
            run = PodRun(name, f"{pod_name}-0" if not is_test else pod_name, namespace, spec, labels, objects, cluster,
                         IMAGE, network, workdir)
            (tests if is_test else apps).append(run)
        assert apps, f"{name}: no workload of the service's image"
        for pod in apps:
            pod.start()
        for pod in apps:
            summary[pod.pod_name] = pod.become_ready()
        # helm test: the rendered Services, each port forwarded to the ready pod it selects.
        hosts = {}
        for service in (d for d in docs if d["kind"] == "Service"):
            pod = next((p for p in apps if selects(service["spec"].get("selector"), p.labels)), None)
            if pod is None:
                continue
            address = network.service_address()
            for port in service["spec"]["ports"]:
                container = pod.spec["containers"][0]
                target = pod._port(container, port.get("targetPort", port["port"]))
                network.forward(port["port"], lambda p=pod, t=target: (p.ip, t), address)
            svc, ns = service["metadata"]["name"], service["metadata"].get("namespace", "default")
            for host in (svc, f"{svc}.{ns}", f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local"):
                hosts[host] = address
        for pod in tests:
            try:
                pod.run_to_completion(hosts)
            except RunError as e:
                raise RunError(f"{e}\nthe service meanwhile:\n" + "\n".join(logs(p.containers[0][0].name, 15)
                                                                        for p in apps)) from None
            summary[pod.pod_name] = "succeeded"
        for pod in apps:
            errors = log_errors(pod.containers[0][0].name)
            if errors:
                raise RunError(f"{name} {pod.pod_name} logged errors:\n" + "\n".join(errors[:5]))
        for pod in apps:
            summary[f"{pod.pod_name} stopped in"] = f"{pod.terminate():.1f} s"
        return summary
    finally:
        for pod in apps + tests:
            pod.remove()
        network.close()


def compose_env(workdir):
    """.env as a user makes it from .env.example: every value replaced by a fresh secret."""
    values = {}
    with open(os.path.join(ROOT, ".env.example")) as f:
        for line in f:
            if "=" in line and not line.lstrip().startswith("#"):
                key = line.split("=", 1)[0].strip()
                values[key] = secrets.token_hex(32)
    values["APP_IMAGE"] = IMAGE
    path = os.path.join(workdir, "compose.env")
    with open(path, "w") as f:
        f.writelines(f"{k}={v}\n" for k, v in values.items())
    return path, values


def run_compose(workdir):
    """compose.yaml's `app`, resolved by docker-compose itself. Its `db` service (an image this
    machine cannot pull) is stood in for by the local PostgreSQL with the same role, password and
    database, reached under the name `db`."""
    env_file, values = compose_env(workdir)
    out = subprocess.run(["docker-compose", "--env-file", env_file, "-f", os.path.join(ROOT, "compose.yaml"),
                          "config"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    db = services["db"]["environment"]
    user, database, password = db["POSTGRES_USER"], db["POSTGRES_DB"], db["POSTGRES_PASSWORD"]
    assert password == values["POSTGRES_PASSWORD"]
    sql_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE);\n"
              f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}') THEN "
              f"CREATE ROLE {user} LOGIN; END IF; END $$;\n"
              f"ALTER ROLE {user} PASSWORD '{password}';\nCREATE DATABASE {database} OWNER {user};\n")
    network = Network(f"render-{RUN_ID}-compose")
    admin = urllib.parse.urlsplit(POSTGRES_URL)
    try:
        network.forward(5432, lambda: (admin.hostname, admin.port or 5432))
        app = ComposeRun("app", services["app"], IMAGE, network, {"db": network.gateway})
        try:
            app.start()
            health = app.become_healthy(within=60)
            errors = log_errors(app.run.name)
            if errors:
                raise RunError("compose app logged errors:\n" + "\n".join(errors[:5]))
            return {"health check": health, "stopped in": f"{app.terminate():.1f} s"}
        finally:
            app.run.remove()
    finally:
        network.close()
        sql_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE);\nDROP ROLE IF EXISTS {user};\n")


def run_nixos_module(workdir):
    """services.devsecops-app as tests/nix/eval-modules.nix evaluates it with nixpkgs' lib: the unit's
    environment and service settings, its API token as the credential the module loads."""
    if not os.path.isdir(os.path.join(NIXPKGS_LIB, "lib")):
        raise RunError(f"no copy of nixpkgs' lib at {NIXPKGS_LIB} (set NIXPKGS_LIB): the module cannot be evaluated")
    out = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", "--argstr", "nixpkgsLib", NIXPKGS_LIB,
                          os.path.join(ROOT, "tests", "nix", "eval-modules.nix")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    unit = json.loads(out.stdout)["service"]["unit"]
    network = Network(f"render-{RUN_ID}-nixos")
    try:
        service = SystemdRun("nixos-module", unit["environment"], unit["serviceConfig"], network, IMAGE, workdir,
                             {"api-token": secrets.token_hex(32).encode()})
        try:
            service.start()
            checks = service.become_ready(within=30)
            errors = log_errors(service.run.name)
            if errors:
                raise RunError("the NixOS unit logged errors:\n" + "\n".join(errors[:5]))
            return {"checks": checks, "stopped in": f"{service.terminate():.1f} s"}
        finally:
            service.run.remove()
    finally:
        network.close()


@pytest.fixture(scope="module")
def results():
    """Runs every render at once (each waits mostly on probes and grace periods) and records how each
    one ended; the tests below report them one by one."""
    docker("image", "inspect", IMAGE)
    remove_leftovers()
    workdir = tempfile.mkdtemp(prefix="devsecops-render-")
    databases = Databases()
    jobs = {name: (run_chart_render, (name, docs, databases, workdir)) for name, docs in RENDERS.items()}
    jobs["compose-app"] = (run_compose, (workdir,))
    jobs["nixos-module"] = (run_nixos_module, (workdir,))
    outcomes = {}
    started = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            futures = {pool.submit(fn, *args): name for name, (fn, args) in jobs.items()}
            for future in concurrent.futures.as_completed(futures):
                name = futures[future]
                try:
                    outcomes[name] = (True, future.result())
                except RunError as e:
                    outcomes[name] = (False, str(e))
                except Exception:  # a harness failure is a failure of that run, reported in full
                    outcomes[name] = (False, traceback.format_exc())
    finally:
        databases.drop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{len(jobs)} runs in {time.monotonic() - started:.1f} s")
    return outcomes


@pytest.mark.parametrize("name", RUNS)
def test_every_rendered_configuration_starts_serves_and_stops(results, name):
    ok, detail = results[name]
    assert ok, detail
    print(f"{name}: {detail}")


def test_every_value_set_and_overlay_is_run():
    assert set(RENDERS) == {f"helm-{n}" for n in VALUE_SETS} | {f"kustomize-{e}" for e in ENVIRONMENTS}
    assert {"helm-appliance", "helm-microk8s-development", "helm-default"} <= set(RENDERS)


def test_a_value_the_binary_refuses_fails_the_run_with_the_binarys_message(tmp_path):
    """The check itself: the scientific notation Helm used to write (helm/helm#12195) reaches the
    binary through the chart's own extraEnv, and the run fails with what the binary says."""
    out = helm_template(["--set", "app.environment=development", "--set", "app.extraEnv[0].name=HSTS_MAX_AGE_SECS",
                         "--set-string", "app.extraEnv[0].value=3.1536e+07"], token=[])
    assert out.returncode == 0, out.stderr
    with pytest.raises(RunError) as refused:
        run_chart_render("refused", documents(out.stdout), Databases(), str(tmp_path))
    message = str(refused.value)
    assert "exited with code 2" in message and "HSTS_MAX_AGE_SECS" in message, message
    assert "invalid digit found in string" in message, message
