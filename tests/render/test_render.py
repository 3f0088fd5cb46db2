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
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import urllib.request

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "k8s", "tests"))

from renders import (ENVIRONMENTS, LOADTEST_VALUE_SETS, RELEASE, VALUE_SETS, documents, helm_template,  # noqa: E402
                     kustomize)
from runtime import (Cluster, ComposeRun, Network, PodRun, RunError, SystemdRun, docker, log_errors,  # noqa: E402
                     logs, remove_leftovers)

IMAGE = os.environ.get("DEVSECOPS_IMAGE", "devsecops-app:dev")
# The load test's image (scripts/build-image.sh --loadtest), which the chart's load-test Job runs.
LOADTEST_IMAGE = os.environ.get("DEVSECOPS_LOADTEST_IMAGE", "devsecops-loadtest:dev")
# The load-test Job run against the default render's service, briefly: the thresholds of the
# chart's defaults decide, as in a cluster.
LOADTEST_RUN = [*LOADTEST_VALUE_SETS["loadtest"], "--set", "loadTest.rampUp=2", "--set", "loadTest.duration=5"]
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://devsecops_test:devsecops_test@127.0.0.1:5432/postgres")
NIXPKGS_LIB = os.environ.get("NIXPKGS_LIB") or os.path.join(os.path.dirname(ROOT), "shared", "nixpkgs-lib")
RUN_ID = f"{os.getpid()}-{secrets.token_hex(2)}"
WORKLOADS = ("Deployment", "Rollout")
UNRUNNABLE = ("StatefulSet", "DaemonSet", "Job", "ReplicaSet")
JOB_TIMEOUT = 120  # a CronJob's run, at most its activeDeadlineSeconds


def chart_renders():
    """Every render of the chart, made as an install makes it (no fixed token: the chart's own)."""
    renders = {}
    for name, args in VALUE_SETS.items():
        out = helm_template(args, token=[])
        assert out.returncode == 0, f"{name}: {out.stderr}"
        renders[f"helm-{name}"] = documents(out.stdout)
    for env in ENVIRONMENTS:
        renders[f"kustomize-{env}"] = kustomize(env)
    out = helm_template(LOADTEST_RUN, token=[])
    assert out.returncode == 0, f"loadtest: {out.stderr}"
    renders["helm-loadtest"] = documents(out.stdout)
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
    """(role, name, namespace, pod spec, labels, job spec) for every pod the render makes; role is
    "workload", "job" (a CronJob's run, started once here) or "test" (a helm test hook)."""
    for doc in docs:
        kind, meta = doc["kind"], doc["metadata"]
        if kind in WORKLOADS:
            template = doc["spec"]["template"]
            yield "workload", meta["name"], meta.get("namespace", "default"), template["spec"], \
                template["metadata"].get("labels", {}), None
        elif kind == "CronJob":
            job = doc["spec"]["jobTemplate"]["spec"]
            unknown = set(job) - {"template", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"}
            if unknown:
                raise RunError(f"CronJob {meta['name']}: job fields not emulated: {sorted(unknown)}")
            yield "job", meta["name"], meta.get("namespace", "default"), job["template"]["spec"], \
                job["template"]["metadata"].get("labels", {}), job
        elif kind == "Pod":
            hook = meta.get("annotations", {}).get("helm.sh/hook", "")
            if hook != "test":
                raise RunError(f"Pod {meta['name']} is not a helm test hook: not emulated")
            yield "test", meta["name"], meta.get("namespace", "default"), doc["spec"], meta.get("labels", {}), None
        elif kind == "Job" and meta.get("annotations", {}).get("helm.sh/hook") == "test":
            # A Job as a helm test hook (the load test): one pod that must succeed, no retries.
            job = doc["spec"]
            unknown = set(job) - {"template", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"}
            if unknown or job.get("backoffLimit") != 0:
                raise RunError(f"Job {meta['name']}: fields not emulated: {sorted(unknown)} "
                               f"(backoffLimit {job.get('backoffLimit')}; only 0 is)")
            yield "test", meta["name"], meta.get("namespace", "default"), job["template"]["spec"], \
                job["template"]["metadata"].get("labels", {}), job
        elif kind in UNRUNNABLE:
            raise RunError(f"{kind} {meta['name']}: not emulated")


def image_of(spec):
    """The local image standing in for the one a pod's containers name: the service's, or the load
    test's. Any other cannot run here."""
    images = {c["image"].split("@")[0].rsplit(":", 1)[0].rsplit("/", 1)[-1] for c in spec["containers"]}
    if images == {"devsecops-app"}:
        return IMAGE
    if images == {"devsecops-loadtest"}:
        return LOADTEST_IMAGE
    raise RunError(f"containers of images {sorted(images)}: no local image stands in for them")


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def run_chart_render(name, docs, databases, workdir):
    """Starts every workload's pod, waits for it to be ready, runs the helm test pods through the
    rendered Services, then deletes the pods as the kubelet does. Returns a summary."""
    objects = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"] in ("ConfigMap", "Secret")}
    network = Network(f"render-{RUN_ID}-{name}"[:60])
    cluster = Cluster(databases.url_for(name))
    apps, jobs, tests, summary = [], [], [], {}
    try:
        for role, pod_name, namespace, spec, labels, job in pods_of(docs):
            run = PodRun(name, pod_name if role == "test" else f"{pod_name}-0", namespace, spec, labels, objects,
                         cluster, image_of(spec), network, workdir)
            {"workload": apps, "job": jobs, "test": tests}[role].append(run)
            run.job = job
        assert apps, f"{name}: no workload of the service's image"
        for pod in apps:
            pod.start()
        for pod in apps:
            summary[pod.pod_name] = pod.become_ready()
        # Each CronJob runs once, beside the ready service, as its schedule would start it.
        for pod in jobs:
            pod.required_affinity_met(apps)
            timeout = min(JOB_TIMEOUT, pod.job.get("activeDeadlineSeconds", JOB_TIMEOUT))
            try:
                pod.run_to_completion({}, timeout)
            except RunError as e:
                raise RunError(f"{e}\nthe service meanwhile:\n" + "\n".join(logs(p.containers[0][0].name, 15)
                                                                        for p in apps)) from None
            summary[pod.pod_name] = job_outcome(pod, apps)
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
                if pod.job:
                    pod.run_to_completion(hosts, pod.job["activeDeadlineSeconds"])
                else:
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
        for pod in apps + jobs + tests:
            pod.remove()
        network.close()


def job_outcome(job, apps):
    """What a CronJob's run must leave: the backup job a verified copy on its own volume, recorded
    where the running service exports it (app_backup_last_success_timestamp_seconds). Any other
    CronJob is unknown here and fails the run."""
    (container,) = job.spec["containers"]
    if container.get("args", [])[:1] != ["backup"]:
        raise RunError(f"{job.render} {job.pod_name}: a CronJob running {container.get('args')} has no check here")
    volumes = {v["name"]: v for v in job.spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    target = container["args"][container["args"].index("--dir") + 1]
    directory = job.claim_directory(volumes[mounts[target]]["persistentVolumeClaim"]["claimName"])
    copies = sorted(f for f in os.listdir(directory) if f.startswith("devsecops-app-") and f.endswith(".db"))
    if len(copies) != 1:
        raise RunError(f"{job.render} {job.pod_name}: expected one backup in {target}, found {os.listdir(directory)}")
    with open(os.path.join(directory, copies[0]), "rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise RunError(f"{job.render} {job.pod_name}: {copies[0]} is not an SQLite database")
    (app,) = apps
    container = app.spec["containers"][0]
    port = app._port(container, "metrics")
    try:
        with urllib.request.urlopen(f"http://{app.ip}:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    except OSError as e:
        raise RunError(f"{job.render}: the service's metrics after the backup: {e}") from None
    recorded = [line for line in body.splitlines() if line.startswith("app_backup_last_success_timestamp_seconds")]
    if not recorded or float(recorded[0].split()[-1]) <= 0:
        raise RunError(f"{job.render}: the service does not export the backup it took: {recorded}")
    return f"{copies[0]}, recorded at {recorded[0].split()[-1]}"


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
    """services.devsecops-app as tests/nix/eval-modules.nix evaluates it with nixpkgs' lib, with
    backups on: the service's unit (its environment and service settings, its API token as the
    credential the module loads); beside it, the backup unit's run into the shared state
    directories (one verified copy, recorded in the database); then, with the service stopped, the
    restore template's instance for that copy, and the service again on the restored database."""
    if not os.path.isdir(os.path.join(NIXPKGS_LIB, "lib")):
        raise RunError(f"no copy of nixpkgs' lib at {NIXPKGS_LIB} (set NIXPKGS_LIB): the module cannot be evaluated")
    out = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", "--argstr", "nixpkgsLib", NIXPKGS_LIB,
                          os.path.join(ROOT, "tests", "nix", "eval-modules.nix")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    units = json.loads(out.stdout)["serviceBackup"]
    network = Network(f"render-{RUN_ID}-nixos")
    state_root = os.path.join(workdir, "nixos-module", "var-lib")
    token = {"api-token": secrets.token_hex(32).encode()}

    def unit_run(name, unit, instance=None):
        config = units[unit] if unit in units else units["restore"]
        return SystemdRun(name, f"{unit}.service", config["environment"], config["serviceConfig"], network, IMAGE,
                          workdir, token, state_root, instance)

    summary, runs = {}, []
    try:
        service = unit_run("nixos-module", "devsecops-app")
        runs.append(service)
        service.start()
        summary["checks"] = service.become_ready(within=30)
        backup = unit_run("nixos-module-backup", "devsecops-app-backup")
        runs.append(backup)
        code, output = backup.run_to_exit()
        if code != 0:
            raise RunError(f"the backup unit exited with {code}:\n{output}")
        backups = os.path.join(state_root, "devsecops-app-backups")
        copies = os.listdir(backups)
        if len(copies) != 1:
            raise RunError(f"the backup unit left {copies} in /var/lib/devsecops-app-backups, not one copy")
        copy = copies[0]
        with open(os.path.join(backups, copy), "rb") as f:
            assert f.read(16) == b"SQLite format 3\x00", copy
        with sqlite3.connect(f"file:{os.path.join(state_root, 'devsecops-app', 'devsecops-app.db')}?mode=ro", uri=True) as db:
            recorded = db.execute("SELECT count(*) FROM backups").fetchone()[0]
        if recorded != 1:
            raise RunError(f"the backup unit's copy is not recorded where the service reads it ({recorded} rows)")
        summary["backup"] = copy
        errors = log_errors(service.run.name)
        if errors:
            raise RunError("the NixOS unit logged errors:\n" + "\n".join(errors[:5]))
        summary["stopped in"] = f"{service.terminate():.1f} s"
        restore = unit_run("nixos-module-restore", "devsecops-app-restore@", instance=copy)
        runs.append(restore)
        code, output = restore.run_to_exit()
        if code != 0:
            raise RunError(f"the restore unit for {copy} exited with {code}:\n{output}")
        again = unit_run("nixos-module-again", "devsecops-app")
        runs.append(again)
        again.start()
        summary["after the restore"] = again.become_ready(within=30)
        again.terminate()
        return summary
    finally:
        for run in runs:
            run.run.remove()
        network.close()


@pytest.fixture(scope="module")
def results():
    """Runs every render at once (each waits mostly on probes and grace periods) and records how each
    one ended; the tests below report them one by one."""
    docker("image", "inspect", IMAGE)
    docker("image", "inspect", LOADTEST_IMAGE)
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
    assert set(RENDERS) == {f"helm-{n}" for n in VALUE_SETS} | {f"kustomize-{e}" for e in ENVIRONMENTS} | {
        "helm-loadtest"}
    # The load test's run has its Job, run by its own image.
    (job,) = [d for d in RENDERS["helm-loadtest"] if d["kind"] == "Job"]
    assert image_of(job["spec"]["template"]["spec"]) == LOADTEST_IMAGE
    assert {"helm-appliance", "helm-default"} | {f"helm-microk8s-{e}" for e in ENVIRONMENTS} <= set(RENDERS)


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


def test_a_job_whose_required_affinity_selects_no_running_pod_is_refused():
    """The scheduler's rule the backup job depends on: with no service pod on the node it would stay
    Pending, so the emulation refuses to run it rather than pass."""
    (job,) = [d for d in RENDERS["helm-sqlite-persistent-ingress"] if d["kind"] == "CronJob"]
    spec = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    pod = PodRun("affinity", "backup-0", "apps", spec, {}, {}, None, IMAGE, None, tempfile.mkdtemp())
    service = PodRun("affinity", "app-0", "apps", {"containers": []}, {"app.kubernetes.io/name": "devsecops-app",
                                                                        "app.kubernetes.io/instance": "devsecops-app"},
                     {}, None, IMAGE, None, tempfile.mkdtemp())
    other = PodRun("affinity", "other-0", "apps", {"containers": []}, {"app.kubernetes.io/name": "other"}, {}, None,
                   IMAGE, None, tempfile.mkdtemp())
    pod.required_affinity_met([service])
    with pytest.raises(RunError, match="would stay Pending"):
        pod.required_affinity_met([other])
