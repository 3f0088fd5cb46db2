"""The Nix side, checked with what runs without a Nix build: the lock's pins, the advisory-db hash
recomputed from the offline snapshot, the image description against the Dockerfile, the appliance's
plain-data pieces (Pod Security admission, Prometheus scrape config) with the real tools, the Nix
gate's policy against devsecops.toml, and the NixOS modules evaluated with nixpkgs' lib when a copy
of it is at hand (NIXPKGS_LIB). Parsing, nixpkgs-fmt and deadnix run in scripts/check-nix.sh.
"""

import json
import os
import re
import shutil
import subprocess
import tomllib

import pytest
import yaml

import systemd_units

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
ADVISORY_DB = os.environ.get("DEVSECOPS_ADVISORY_DB", os.path.join(SHARED, "advisory-db"))
NIX = ["nix", "--extra-experimental-features", "nix-command"]


def nix_eval(expr):
    out = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", "--expr", expr],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def lock():
    with open(os.path.join(ROOT, "flake.lock")) as f:
        return json.load(f)


def test_every_flake_input_is_locked_to_a_commit_and_a_nar_hash(lock):
    inputs = nix_eval(f"builtins.mapAttrs (n: v: v.url) (import {ROOT}/flake.nix).inputs")
    root = lock["nodes"][lock["root"]]["inputs"]
    assert set(root) == set(inputs)
    for name, url in inputs.items():
        node = lock["nodes"][root[name]]
        locked, original = node["locked"], node["original"]
        assert re.fullmatch(r"[0-9a-f]{40}", locked["rev"]), name
        assert re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", locked["narHash"]), name
        assert locked["lastModified"] > 1_700_000_000, name
        # The lock's original is the flake.nix URL, parsed.
        kind, path = url.split(":", 1)
        parts = path.split("/")
        assert (original["type"], original["owner"], original["repo"]) == (kind, parts[0], parts[1]), name
        assert original.get("ref") == (parts[2] if len(parts) > 2 else None), name
        assert (locked["owner"], locked["repo"]) == (original["owner"], original["repo"]), name
    assert lock["nodes"]["advisory-db"].get("flake") is False
    assert lock["nodes"]["nixpkgs"]["original"]["ref"].startswith("nixos-"), "nixpkgs follows a stable release branch"


def advisory_db_commit():
    """The commit of the advisory database the tests read: a checkout's HEAD or the snapshot's note."""
    if os.path.isdir(os.path.join(ADVISORY_DB, ".git")):
        out = subprocess.run(["git", "-C", ADVISORY_DB, "rev-parse", "HEAD"], capture_output=True, text=True)
        return out.stdout.strip()
    with open(os.path.join(ADVISORY_DB, "SNAPSHOT.md")) as f:
        return f.read()


def test_the_advisory_db_pin_is_the_offline_snapshot_and_its_nar_hash_matches(lock, tmp_path):
    node = lock["nodes"]["advisory-db"]["locked"]
    assert node["rev"] in advisory_db_commit(), f"the lock pins a different advisory-db commit than {ADVISORY_DB}"
    # Hash exactly what GitHub's tarball of the commit holds: no .git, no snapshot note.
    tree = tmp_path / "advisory-db"
    shutil.copytree(ADVISORY_DB, tree, symlinks=True, ignore=shutil.ignore_patterns(".git", "SNAPSHOT.md"))
    os.chmod(tree, 0o755)
    out = subprocess.run([*NIX, "hash", "path", str(tree)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == node["narHash"]


def dockerfile_final_stage():
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        text = re.sub(r"\\\n", " ", f.read())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    stage = {"LABEL": {}, "ENV": {}}
    for line in lines[last_from:]:
        keyword, _, rest = line.partition(" ")
        if keyword in ("LABEL", "ENV"):
            for key, value in re.findall(r'([\w.]+)=("[^"]*"|\S+)', rest):
                stage[keyword][key] = value.strip('"')
        else:
            stage[keyword] = rest.strip()
    return stage


def test_the_nix_image_describes_itself_as_the_dockerfile_does():
    config = nix_eval(f"import {ROOT}/nix/image-config.nix")
    stage = dockerfile_final_stage()
    assert stage["FROM"] == "scratch"
    assert json.loads(stage["ENTRYPOINT"]) == config["entrypoint"]
    assert stage["USER"] == f"{config['uid']}:{config['gid']}"
    assert stage["EXPOSE"] == str(config["port"])
    assert stage["ENV"] == config["env"]
    per_build = {"org.opencontainers.image.version", "org.opencontainers.image.revision"}
    assert {k: v for k, v in stage["LABEL"].items() if k not in per_build} == config["labels"]
    assert per_build <= set(stage["LABEL"])
    with open(os.path.join(ROOT, "nix", "packages.nix")) as f:
        packages = f.read()
    for key in per_build:
        assert f'"{key}"' in packages, f"the Nix image sets {key} per build"


def test_the_appliance_enforces_pod_security_restricted_everywhere_but_kube_system():
    config = nix_eval(f"import {ROOT}/nixos-modules/appliance/pod-security.nix")
    assert config["kind"] == "AdmissionConfiguration"
    (plugin,) = config["plugins"]
    assert plugin["name"] == "PodSecurity"
    psa = plugin["configuration"]
    assert psa["kind"] == "PodSecurityConfiguration"
    assert {psa["defaults"][mode] for mode in ("enforce", "audit", "warn")} == {"restricted"}
    assert psa["exemptions"] == {"usernames": [], "runtimeClasses": [], "namespaces": ["kube-system"]}
    with open(os.path.join(ROOT, "nixos-modules", "appliance", "default.nix")) as f:
        module = f.read()
    assert "admission-control-config-file=${admissionConfig}" in module


PROMETHEUS_RULES = os.path.join(ROOT, "observability", "prometheus", "rules", "devsecops-app.rules.yml")


def promtool(scrape, tmp_path):
    config = {"global": {"scrape_interval": "15s"}, "rule_files": [PROMETHEUS_RULES], "scrape_configs": scrape}
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(["promtool", "check", "config", "--syntax-only", str(path)], capture_output=True, text=True)


def promtool_check_config(scrape, tmp_path):
    """promtool on the configuration. Debian's promtool is built without Kubernetes discovery and
    refuses `kubernetes_sd_configs` as an unknown field: that is asserted first (so a promtool that
    knows it ends this), then the rest is checked with each discovery replaced by a static target.
    The discovery's keys are checked against nixpkgs' typed options (prometheus-types.nix), and the
    flake's build runs nixpkgs' own promtool on all of it (checkConfig = "syntax-only")."""
    discovered = [job for job in scrape if "kubernetes_sd_configs" in job]
    if discovered:
        out = promtool(scrape, tmp_path)
        assert out.returncode != 0 and "field kubernetes_sd_configs not found" in out.stdout + out.stderr, \
            "this promtool knows Kubernetes discovery: check the configuration as it is " + out.stdout + out.stderr
        scrape = [{k: v for k, v in job.items() if k != "kubernetes_sd_configs"} | {"static_configs": [{"targets": ["10.42.0.9:9464"]}]}
                  if job in discovered else job for job in scrape]
    out = promtool(scrape, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_appliance_prometheus_config_passes_promtool_and_feeds_the_rules(tmp_path):
    scrape = nix_eval(f'import {ROOT}/nixos-modules/appliance/scrape-configs.nix '
                      '{ namespace = "devsecops"; credentialsDirectory = "/run/prometheus-k3s"; }')
    promtool_check_config(scrape, tmp_path)
    with open(PROMETHEUS_RULES) as f:
        selected = set(re.findall(r'job="([^"]+)"', f.read()))
    assert selected and selected <= {job["job_name"] for job in scrape}


def test_the_appliance_prometheus_scrapes_the_metrics_port_found_through_the_api_never_the_ingress():
    (job,) = [j for j in nix_eval(f'import {ROOT}/nixos-modules/appliance/scrape-configs.nix '
                                  '{ namespace = "devsecops"; credentialsDirectory = "/run/p"; }') if j["job_name"] == "devsecops-app"]
    assert "static_configs" not in job, "no fixed address: the ingress host was one"
    (sd,) = job["kubernetes_sd_configs"]
    assert sd["role"] == "endpoints" and sd["namespaces"]["names"] == ["devsecops"]
    assert sd["authorization"]["credentials_file"] == "/run/p/token" and sd["tls_config"]["ca_file"] == "/run/p/ca.crt"
    keep = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    assert keep == [{"source_labels": ["__meta_kubernetes_service_label_app_kubernetes_io_component",
                                       "__meta_kubernetes_endpoint_port_name"], "regex": "metrics;metrics", "action": "keep"}]
    # The chart names the port and labels the Service that way.
    with open(os.path.join(ROOT, "k8s", "chart", "templates", "service.yaml")) as f:
        service = f.read()
    assert "app.kubernetes.io/component: metrics" in service and "- name: metrics" in service


def test_the_appliance_prometheus_yml_as_nixos_writes_it_passes_promtool(modules, tmp_path):
    """The scrape configuration after nixpkgs' typed options (unknown keys refused, unset ones
    dropped): what the appliance's Prometheus reads."""
    promtool_check_config(modules["appliance"]["prometheusScrapeConfigs"], tmp_path)


def test_a_scrape_config_key_nixpkgs_does_not_declare_fails_the_evaluation():
    if not os.environ.get("NIXPKGS_LIB"):
        pytest.skip("NIXPKGS_LIB is not set")
    expr = (f'let lib = import {os.environ["NIXPKGS_LIB"]}/lib; t = import {ROOT}/tests/nix/prometheus-types.nix {{ inherit lib; }}; '
            'in (lib.evalModules { modules = [ { options.scrapeConfigs = t.scrapeConfigs; } '
            '{ scrapeConfigs = [ { job_name = "x"; static_config = [ ]; } ]; } ]; }).config.scrapeConfigs')
    out = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", "--expr", expr], capture_output=True, text=True)
    assert out.returncode != 0 and "static_config' does not exist" in out.stderr, out.stderr


def test_the_nix_gate_applies_the_same_policy_as_devsecops_toml():
    with open(os.path.join(ROOT, "devsecops.toml"), "rb") as f:
        project = tomllib.load(f)
    with open(os.path.join(ROOT, "nix", "devsecops-gate.toml"), "rb") as f:
        nix_gate = tomllib.load(f)
    assert nix_gate["policy"] == project["policy"]
    assert nix_gate["paths"] == project["paths"]
    names = {s["name"] for s in project["scanner"]}
    # Cargo's gates run as their own flake checks; every other scanner of the project runs here.
    assert names - {s["name"] for s in nix_gate["scanner"]} == {"clippy", "cargo-audit", "cargo-deny"}


def test_every_vm_test_and_lint_is_a_flake_check():
    with open(os.path.join(ROOT, "nix", "checks.nix")) as f:
        checks = f.read()
    for vm_test in sorted(os.listdir(os.path.join(ROOT, "vm-tests"))):
        assert f"../vm-tests/{vm_test}" in checks, f"{vm_test} is not run by nix flake check"
    for name in ("clippy", "fmt", "tests", "audit", "deny", "devsecops-gate", "nix-lint"):
        assert re.search(rf"^  {name} = ", checks, re.M), name


@pytest.mark.parametrize("test", ["service", "appliance"])
def test_the_vm_test_scripts_are_python_that_drives_their_machines(test):
    """The test driver runs testScript as Python with one object per machine: it must compile once
    Nix has filled in every interpolation, and every machine it drives must exist."""
    import ast

    vm_test = nix_eval(f"let t = (import {ROOT}/tests/nix/vm-tests.nix {{ }}).{test}; "
                       "in { inherit (t) testScript; nodes = builtins.attrNames t.nodes; }")
    tree = ast.parse(vm_test["testScript"], filename=f"vm-tests/{test}.nix")
    driven = {node.func.value.id for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and isinstance(node.func.value, ast.Name)
              and node.func.attr in ("succeed", "fail", "wait_for_unit", "wait_until_succeeds", "start",
                                     "wait_for_open_port")}
    # Names that stand for a machine: loop variables and the parameters of the script's helpers.
    loop_vars = {node.target.id for node in ast.walk(tree) if isinstance(node, ast.For)
                 and isinstance(node.target, ast.Name)}
    params = {a.arg for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) for a in node.args.args}
    assert driven, "the script drives no machine"
    assert driven - loop_vars - params <= set(vm_test["nodes"]), driven


# Module evaluation with nixpkgs' lib: the `modules` fixture (conftest.py).


def test_the_service_unit_is_sandboxed_and_gets_secrets_as_credentials(modules):
    unit = modules["service"]["unit"]
    sc = unit["serviceConfig"]
    assert sc["DynamicUser"] is True and sc["NoNewPrivileges"] is True
    assert sc["CapabilityBoundingSet"] == [""] and sc["AmbientCapabilities"] == []
    assert sc["ProtectSystem"] == "strict" and sc["PrivateDevices"] is True
    assert sc["RestrictAddressFamilies"] == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert sc["SystemCallFilter"][0] == "@system-service" and "~@privileged" in sc["SystemCallFilter"]
    assert sc["LoadCredential"] == ["api-token:/run/secrets/devsecops-api-token"]
    assert unit["environment"]["API_TOKEN_FILE"] == "%d/api-token"
    assert unit["environment"]["DATABASE_URL"].startswith("sqlite:///var/lib/devsecops-app/")
    assert "/run/secrets" not in json.dumps(unit["environment"])
    # Drain bound plus margin: systemd never kills a draining service.
    assert sc["TimeoutStopSec"] == 25
    assert modules["service"]["failedAssertions"] == []


def test_the_service_module_refuses_unsafe_settings(modules):
    failed = modules["serviceUnsafe"]["failedAssertions"]
    assert any("production needs apiTokenFile" in m for m in failed)
    assert any("carries a password" in m for m in failed)
    assert any("extraEnvironment.API_TOKEN" in m for m in failed)
    assert any("extraEnvironment names" in m for m in failed)
    assert any("TRUST_FORWARDED_FOR is no longer read" in m for m in failed)
    assert any("metrics.port is also port" in m for m in failed)
    for case in ("servicePort80", "serviceMetricsPort443"):
        privileged_port = modules[case]["serviceConfig"]
        assert privileged_port["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"], case
        assert privileged_port["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"], case
        assert privileged_port["PrivateUsers"] is False, case


def test_a_password_anywhere_sqlx_reads_one_keeps_the_database_url_out_of_the_store(modules):
    """sqlx-postgres takes the password from the user info and from a percent-decoded `password`
    query key (src/options/parse.rs); either would be world-readable in the store."""
    cases = modules["serviceDatabaseUrls"]
    refused = lambda case: any("carries a password" in m for m in case["failedAssertions"])
    assert [c["url"] for c in cases["withPassword"] if not refused(c)] == []
    assert [c["url"] for c in cases["withoutPassword"] if c["failedAssertions"]] == []


def test_a_secret_in_extra_environment_is_refused(modules):
    """PGPASSWORD is sqlx-postgres' password (src/options/mod.rs), names say what they hold, and a
    URL with a password is one whatever its variable; all would be world-readable in the store."""
    (message,) = modules["serviceExtraSecrets"]["failedAssertions"]
    assert "extraEnvironment would put a secret in the world-readable Nix store" in message
    listed = message.split("store: ", 1)[1].split(". ", 1)[0].split(", ")
    assert sorted(listed) == sorted(["PGPASSWORD", "DB_PASSWORD", "smtp_secret", "AUTH_TOKEN", "UPSTREAM"])


def test_extra_environment_cannot_replace_what_the_module_sets(modules):
    failed = modules["serviceOverrides"]["failedAssertions"]
    (message,) = [m for m in failed if "extraEnvironment sets what the module sets itself" in m]
    # Its DATABASE_URL carries a password too, and is refused for that as well.
    assert any("secret in the world-readable Nix store: DATABASE_URL." in m for m in failed), failed
    for name, option in (("DATABASE_URL", "databaseUrl"), ("API_TOKEN_FILE", "apiTokenFile"), ("HOST", "host")):
        assert f"{name} (use {option})" in message
    assert "RATE_LIMIT_PER_SECOND" not in message, "settings the module does not own stay free"


def test_the_service_module_sets_the_metrics_listener_openapi_and_trusted_proxies(modules):
    default = modules["service"]["unit"]["environment"]
    assert (default["METRICS_HOST"], default["METRICS_PORT"], default["OPENAPI_PUBLIC"]) == ("127.0.0.1", "9464", "true")
    assert "TRUSTED_PROXIES" not in default, "no proxy is believed unless named"
    proxied = modules["serviceProxied"]["environment"]
    assert proxied["TRUSTED_PROXIES"] == "10.42.0.0/16,127.0.0.1"
    assert (proxied["METRICS_HOST"], proxied["OPENAPI_PUBLIC"]) == ("0.0.0.0", "false")


def test_the_appliance_declares_k3s_the_chart_and_the_observability_stack(modules):
    appliance = modules["appliance"]
    k3s = appliance["k3s"]
    assert any(flag.startswith("--kube-apiserver-arg=admission-control-config-file=") for flag in k3s["extraFlags"])
    assert len(k3s["images"]) == 2, "the k3s airgap images and the service's image"
    chart = k3s["chart"]
    assert chart["targetNamespace"] == "devsecops"
    assert chart["values"]["image"]["repository"] == "127.0.0.1:5000/devsecops-app"
    assert chart["values"]["ingress"]["className"] == "traefik"
    # Settings the appliance's options give the chart; the rest stay the chart's defaults.
    assert chart["values"]["app"]["metricsPort"] == 9465
    assert chart["values"]["app"]["trustedProxies"] == ["10.42.0.0/16"]
    assert "openapiPublic" not in chart["values"]["app"]
    # Prometheus' discovery account may read, nothing else, in the release namespace only.
    kinds = {o["kind"]: o for o in appliance["prometheusDiscovery"]}
    assert set(kinds) == {"ServiceAccount", "Role", "RoleBinding", "Secret"}
    assert all(o["metadata"]["namespace"] == "devsecops" for o in kinds.values())
    assert {v for rule in kinds["Role"]["rules"] for v in rule["verbs"]} == {"get", "list", "watch"}
    assert kinds["Secret"]["type"] == "kubernetes.io/service-account-token"
    # Its credentials exist at run time only: promtool at build time checks syntax alone.
    assert appliance["prometheusCheckConfig"] == "syntax-only"
    assert k3s["namespaceLabels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert appliance["prometheusRules"][0].endswith("observability/prometheus/rules/devsecops-app.rules.yml")
    assert appliance["alloyConfig"].endswith("observability/alloy/appliance.alloy")
    assert appliance["lokiConfig"].endswith("observability/loki/loki.yaml")
    assert appliance["grafanaDashboardProvider"]
    assert appliance["sshPasswordAuthentication"] is False
    assert appliance["failedAssertions"] == []


def test_the_service_vm_test_runs_both_databases_with_a_token_made_before_the_service(modules):
    nodes = modules["vmTests"]["service"]["nodes"]
    assert set(nodes) == {"sqlite", "postgres"}
    # Percent-encoded in the VM test, so a running systemd shows what tests/nix/test_systemd_units
    # checks here: the URL reaches the service as written.
    assert nodes["postgres"]["databaseUrl"] == "postgres:///devsecops-app?host=%2Frun%2Fpostgresql&user=devsecops-app"
    unit = modules["units"]["vmService"]["postgres"]["devsecops-app"]
    assert systemd_units.literal_values(unit, "Environment")["DATABASE_URL"] == nodes["postgres"]["databaseUrl"]
    assert nodes["sqlite"]["environment"]["DATABASE_URL"].startswith("sqlite:///var/lib/devsecops-app/")
    assert nodes["postgres"]["environment"]["TRUSTED_PROXIES"] == "127.0.0.1"
    assert "TRUSTED_PROXIES" not in nodes["sqlite"]["environment"]
    for node in nodes.values():
        assert node["tokenBeforeService"] == ["devsecops-app.service"]
        assert node["environment"]["API_TOKEN_FILE"] == "%d/api-token"


def test_the_vm_test_machines_evaluate(modules):
    for test in ("service", "appliance"):
        for name, machine in modules["vmTests"][test]["nodes"].items():
            assert machine["failedAssertions"] == [], (test, name)


def test_the_appliance_gives_k3s_traefik_the_shared_limits_and_a_layout_that_keeps_client_addresses(modules):
    """k3s merges a HelmChartConfig named after its bundled chart over that chart's values
    (kube-system, name traefik). The limits and access log are k8s/platform/traefik-values.json as
    it is (k8s/tests checks them against the service's values); the layout replaces ServiceLB,
    whose svclb pods masquerade every client, by host ports on a DaemonSet."""
    config = modules["appliance"]["k3s"]["traefikConfig"]
    assert (config["apiVersion"], config["kind"]) == ("helm.cattle.io/v1", "HelmChartConfig")
    assert config["metadata"] == {"name": "traefik", "namespace": "kube-system"}
    values = yaml.safe_load(config["spec"]["valuesContent"])
    with open(os.path.join(ROOT, "k8s", "platform", "traefik-values.json")) as f:
        shared = json.load(f)
    assert {k: values[k] for k in shared} == shared
    assert values["deployment"]["kind"] == "DaemonSet"
    assert (values["ports"]["web"]["hostPort"], values["ports"]["websecure"]["hostPort"]) == (80, 443)
    assert values["service"]["enabled"] is False
    assert values["providers"]["kubernetesIngress"]["publishedService"]["enabled"] is False
    # The host ports are the ones the firewall opens for the ingress.
    with open(os.path.join(ROOT, "nixos-modules", "appliance", "default.nix")) as f:
        assert "allowedTCPPorts = [ 22 80 443 6443 ];" in f.read()


def test_the_appliance_backs_up_its_database_by_default(modules):
    backup = modules["appliance"]["k3s"]["chart"]["values"]["database"]["sqlite"]["backup"]
    assert backup == {"enabled": True, "schedule": "17 3 * * *", "keep": 7}
