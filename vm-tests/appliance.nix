# The appliance booted in a VM with no network beyond itself: k3s comes up from the airgap images,
# the chart deploys the service behind the ingress, a killed container is restarted, the image and
# the closure pass the project's gate offline (every Rust binary of the system closure audited from
# the crates cargo auditable embedded in it), a request's log line reaches Loki, Grafana lists the
# provisioned dashboards and Prometheus scrapes the service's metrics port, which the ingress never
# serves. A second machine checks the ingress: the service's limits, and Traefik's access log
# naming the client's own address. The backup CronJob runs and the service exports its time.
{ pkgs, project, nixosModules, advisory-db }:

let
  hostName = "devsecops.appliance.internal";
  dashboards = map
    (file: (builtins.fromJSON (builtins.readFile (../observability/grafana/dashboards + "/${file}"))).title)
    (builtins.attrNames (builtins.readDir ../observability/grafana/dashboards));
  # Test-only Grafana password: this VM never leaves the test.
  grafanaPassword = "vm-test-grafana-password";
  metricsPort = 9465;

  # The gate on the appliance's own artifacts, offline: the dependencies embedded in the image's
  # binary against the pinned advisory database, secrets in the image's layers, and the CycloneDX
  # SBOM of the appliance's whole closure (/run/current-system).
  scanConfig = pkgs.writeText "devsecops.toml" ''
    [policy]
    fail_on = ["critical", "high"]
    mode = "all"

    [[scanner]]
    name = "cargo-audit-image-binary"
    format = "cargo-audit"
    command = ["cargo-audit", "audit", "--db", "advisory-db", "--no-fetch", "--stale", "--json", "bin", "${project.devsecops-app-static}/bin/devsecops-app"]
    ok_exit_codes = [0, 1]

    [[scanner]]
    name = "trivy-image-secrets"
    format = "trivy"
    command = ["trivy", "image", "--input", "${project.image-tarball}", "--scanners", "secret", "--skip-db-update", "--offline-scan", "--format", "json", "--quiet"]

    [[scanner]]
    name = "closure-sbom"
    format = "cyclonedx"
    command = ["cat", "closure.cdx.json"]
  '';
in
pkgs.testers.runNixOSTest {
  name = "devsecops-appliance";

  nodes.appliance = { pkgs, ... }: {
    imports = [ nixosModules.appliance ];
    devsecops.appliance = {
      enable = true;
      inherit hostName;
      chart = project.chart;
      image = project.image-tarball;
      imageTag = project.common.version;
      grafanaAdminPasswordFile = pkgs.writeText "grafana-admin-password" grafanaPassword;
      # Not the default: Prometheus must follow the port the chart is given.
      app.metricsPort = metricsPort;
    };
    virtualisation = {
      memorySize = 6144;
      diskSize = 12288;
      cores = 4;
    };
    environment.systemPackages = [ project.devsecops pkgs.cargo-audit pkgs.trivy pkgs.git pkgs.nix ];
  };
  # A client on the test network: what Traefik logs as the client must be this machine's address.
  nodes.client = { pkgs, ... }: {
    environment.systemPackages = [ pkgs.curl ];
  };

  # Commands run as `set -euo pipefail; <command>` (the driver's execute()); tests/nix checks
  # each with shellcheck and for pipelines whose outcome pipefail would decide.
  testScript = ''
    import json
    import uuid

    host = "${hostName}"
    kubectl = "k3s kubectl -n devsecops"

    start_all()

    with subtest("k3s is ready and the service's Deployment is available"):
        appliance.wait_for_unit("k3s.service")
        appliance.wait_until_succeeds(
            "k3s kubectl get nodes -o jsonpath='{.items[0].status.conditions[?(@.type==\"Ready\")].status}' | grep -x True",
            timeout=600,
        )
        appliance.wait_until_succeeds(f"{kubectl} rollout status deployment/devsecops-app --timeout=10s", timeout=900)

    with subtest("Pod Security restricted is enforced"):
        # kubectl exits 1 on the refusal: fail() expects that, the message says why.
        refusal = appliance.fail(
            f"{kubectl} run psa-probe --image=${project.image-tarball.imageName}:${project.common.version} --restart=Never --privileged 2>&1"
        )
        assert 'violates PodSecurity "restricted' in refusal, refusal

    with subtest("/health and /ready through the ingress"):
        appliance.wait_until_succeeds(f"curl -fsS http://{host}/health", timeout=120)
        appliance.succeed(f"curl -fsS http://{host}/ready")

    with subtest("the ingress holds requests to the service's limits and logs the client's address"):
        # IPv4 on both ends: the address the client connects from is the one Traefik must log.
        client_address = appliance.succeed("getent ahostsv4 client").split()[0]
        request_id = f"ingress-{uuid.uuid4().hex}"
        via = f"-4 -H 'Host: {host}' http://appliance"
        client.wait_until_succeeds(f"curl -fsS {via}/health", timeout=120)
        client.succeed(f"curl -fsS -H 'X-Request-ID: {request_id}' {via}/health")
        # A body over MAX_BODY_BYTES: 413 from Traefik's buffering middleware.
        status = client.succeed(
            f"head -c 70000 /dev/zero | tr '\\0' a | curl -s -o /dev/null -w '%{{http_code}}' -X POST"
            f" -H 'Content-Type: application/json' --data-binary @- {via}/api/users"
        )
        assert status == "413", status
        # Headers over the service's own limit: its 431 problem reaches the client through Traefik.
        problem = client.succeed(f"curl -s -H \"X-Big: $(head -c 20000 /dev/zero | tr '\\0' a)\" {via}/health")
        assert json.loads(problem)["status"] == 431, problem
        # A head over Traefik's limit stops there (actix-http's 128 KiB bare refusal is never reached).
        status = client.succeed(
            f"curl -s -o /dev/null -w '%{{http_code}}' -H \"X-Huge: $(head -c 130000 /dev/zero | tr '\\0' a)\" {via}/health"
        )
        assert status == "431", status
        log = appliance.succeed("k3s kubectl -n kube-system logs daemonset/traefik --tail=500")
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{") and '"ClientHost"' in line]
        ours = [line for line in lines if line.get("downstream_X-Request-Id") == request_id]
        assert [line["ClientHost"] for line in ours] == [client_address], (client_address, ours, lines[-5:])
        refused = [line for line in lines if line.get("DownstreamStatus") == 413]
        assert refused and all(line["ClientHost"] == client_address for line in refused), refused

    with subtest("the backup CronJob copies the database and the service exports when"):
        appliance.succeed(f"{kubectl} create job --from=cronjob/devsecops-app-backup backup-now")
        appliance.wait_until_succeeds(f"{kubectl} wait --for=condition=Complete job/backup-now --timeout=10s", timeout=300)
        appliance.wait_until_succeeds(
            "curl -fsSG http://127.0.0.1:9090/api/v1/query --data-urlencode 'query=app_backup_last_success_timestamp_seconds > 0'"
            " | jq -e '.data.result | length == 1'",
            timeout=120,
        )

    with subtest("a killed container is restarted and readiness follows"):
        container = appliance.succeed("k3s crictl ps --name devsecops-app -q").strip()
        pid = json.loads(appliance.succeed(f"k3s crictl inspect {container}"))["info"]["pid"]
        appliance.succeed(f"kill -KILL {pid}")
        appliance.wait_until_succeeds(
            f"test \"$({kubectl} get pods -l app.kubernetes.io/name=devsecops-app -o jsonpath='{{.items[0].status.containerStatuses[0].restartCount}}')\" -ge 1",
            timeout=120,
        )
        appliance.wait_until_succeeds(f"curl -fsS http://{host}/ready", timeout=120)
        appliance.succeed(f"{kubectl} rollout status deployment/devsecops-app --timeout=60s")

    with subtest("the image and the closure pass the gate offline"):
        appliance.succeed(
            "mkdir -p /tmp/scan && cd /tmp/scan"
            " && cp -r ${advisory-db} advisory-db && chmod -R u+w advisory-db"
            " && git -C advisory-db init -q && git -C advisory-db add -A"
            " && git -C advisory-db -c user.name=t -c user.email=t@localhost commit -q -m snapshot"
            " && devsecops sbom --nix /run/current-system -o closure.cdx.json"
            " && cp ${scanConfig} devsecops.toml && devsecops scan"
        )
        summary = appliance.succeed("cat /tmp/scan/reports/devsecops-summary.md")
        print(summary)

    with subtest("every Rust binary of the system closure and the image's binary are audited offline"):
        # What a user with Nix sees: each binary's embedded crates against the pinned database,
        # findings attributed to store path and NAR hash, Rust binaries without the list named.
        appliance.succeed(
            "cd /tmp/scan && devsecops audit --nix /run/current-system --db advisory-db --output closure-audit.json"
        )
        audit = json.loads(appliance.succeed("cat /tmp/scan/closure-audit.json"))
        assert audit["errors"] == [] and audit["store_paths"] > 100, audit["errors"]
        assert any("-cargo-audit-" in b["path"] for b in audit["binaries"]), "nixpkgs builds cargo-audit with cargo auditable"
        print(
            f"{audit['store_paths']} store paths, {len(audit['binaries'])} Rust binaries audited"
            f" ({sum(b['crates'] for b in audit['binaries'])} crates); not auditable:"
            f" {[a['path'] for a in audit['not_auditable']]}; advisories:"
            f" {[(m['advisory']['id'], m['package'], m['version']) for m in audit['findings']]}"
        )
        print(appliance.succeed(
            "cd /tmp/scan && devsecops ingest --tool devsecops-audit closure-audit.json"
            " && devsecops audit --db advisory-db ${project.devsecops-app-static}/bin/devsecops-app 2>&1"
            " && devsecops gate"
        ))

    with subtest("a request's log line reaches Loki by its request id"):
        request_id = f"vmtest-{uuid.uuid4().hex}"
        appliance.succeed(f"curl -fsS -H 'X-Request-ID: {request_id}' http://{host}/health")
        query = f'{{app="devsecops-app"}} | request_id="{request_id}"'
        appliance.wait_until_succeeds(
            "curl -fsSG http://127.0.0.1:3100/loki/api/v1/query_range"
            f" --data-urlencode 'query={query}' --data-urlencode since=15m"
            " | jq -e '.data.result | length > 0'",
            timeout=60,
        )

    with subtest("Grafana lists the provisioned dashboards"):
        appliance.wait_for_unit("grafana.service")
        appliance.wait_for_open_port(3000)
        found = json.loads(appliance.succeed(
            "curl -fsS -u admin:${grafanaPassword} 'http://127.0.0.1:3000/api/search?type=dash-db'"
        ))
        titles = {d["title"] for d in found}
        for title in ${builtins.toJSON dashboards}:
            assert title in titles, f"{title} missing from {titles}"

    with subtest("Prometheus scrapes the pod's metrics port, found through the API, never the ingress"):
        appliance.wait_until_succeeds(
            "curl -fsS http://127.0.0.1:9090/api/v1/targets"
            " | jq -e '[.data.activeTargets[] | select(.labels.job == \"devsecops-app\")]"
            " | length == 1 and all(.health == \"up\" and (.scrapeUrl | endswith(\":${toString metricsPort}/metrics\"))"
            " and .labels.namespace == \"devsecops\")'",
            timeout=180,
        )
        for path in ("/metrics", "/debug/memory"):
            status = appliance.succeed(f"curl -s -o /dev/null -w '%{{http_code}}' http://{host}{path}")
            assert status == "404", (path, status)
  '';
}
