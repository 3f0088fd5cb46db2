# services.devsecops-app on two machines: SQLite in the state directory, and PostgreSQL over its
# Unix socket with peer authentication (the unit's dynamic user owns its database). Checks the
# probes, token-guarded writes from a systemd credential, the sandbox's exposure rating, a clean
# stop within the drain bound, and on SQLite the backup timer's unit and a restore.
{ pkgs, project, nixosModules }:

let
  # A random token made on the machine before the service starts, outside the store, as a real
  # secret would be (production refuses weak tokens).
  tokenFile = "/run/devsecops-test/api-token";
  databaseUrl = "postgres:///devsecops-app?host=%2Frun%2Fpostgresql&user=devsecops-app";
  common = {
    imports = [ nixosModules.devsecops-app ];
    services.devsecops-app = {
      enable = true;
      package = project.devsecops-app;
      apiTokenFile = tokenFile;
      shutdown.timeoutSeconds = 5;
    };
    systemd.services.devsecops-test-token = {
      wantedBy = [ "devsecops-app.service" ];
      before = [ "devsecops-app.service" ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        UMask = "0077";
      };
      script = ''
        mkdir -p ${dirOf tokenFile}
        head -c 32 /dev/urandom | base64 | tr -d '/+=' > ${tokenFile}
      '';
    };
    environment.systemPackages = [ pkgs.curl pkgs.jq ];
  };
in
pkgs.testers.runNixOSTest {
  name = "devsecops-app-service";

  nodes = {
    sqlite = {
      imports = [ common ];
      services.devsecops-app.backup = {
        enable = true;
        keep = 2;
      };
    };
    postgres = {
      imports = [ common ];
      services.postgresql = {
        enable = true;
        ensureDatabases = [ "devsecops-app" ];
        ensureUsers = [{ name = "devsecops-app"; ensureDBOwnership = true; }];
      };
      # Percent-encoded, as URLs often are: systemd must not read %2F as a specifier.
      services.devsecops-app.databaseUrl = databaseUrl;
      # curl on the machine stands in for a reverse proxy: its X-Forwarded-For hop is believed.
      services.devsecops-app.trustedProxies = [ "127.0.0.1" ];
    };
  };

  # Commands run as `set -euo pipefail; <command>` (the driver's execute()): what a pipeline would
  # hide, an early-exiting grep or a failing first stage, is asserted in Python on the output.
  testScript = ''
    import json
    import re

    def main_pid(machine):
        # One property, its bare value (--value): nothing of systemctl's formatting to parse.
        pid = machine.succeed("systemctl show --property=MainPID --value devsecops-app.service").strip()
        assert pid.isdigit() and pid != "0", f"devsecops-app is not running: MainPID={pid!r}"
        return pid

    start_all()
    for machine in (sqlite, postgres):
        with subtest(f"{machine.name}: probes"):
            machine.wait_for_unit("devsecops-app.service")
            machine.wait_until_succeeds("curl -fsS http://127.0.0.1:8080/ready", timeout=60)
            machine.succeed("curl -fsS http://127.0.0.1:8080/health")

        with subtest(f"{machine.name}: metrics on the internal port only"):
            metrics = machine.succeed("curl -fsS http://127.0.0.1:9464/metrics")
            assert re.search(r"^http_requests_total", metrics, re.M), metrics
            for path in ("/metrics", "/debug/memory"):
                status = machine.succeed(f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:8080{path}")
                assert status == "404", (path, status)
            machine.succeed("curl -fsS http://127.0.0.1:9464/openapi.json", "curl -fsS http://127.0.0.1:8080/openapi.json")

        with subtest(f"{machine.name}: writes need the token from the credential"):
            token = machine.succeed("cat ${tokenFile}").strip()
            body = json.dumps({"name": "Ada", "email": f"ada@{machine.name}.example"})
            status = machine.succeed(
                f"curl -s -o /dev/null -w '%{{http_code}}' -X POST -H 'Content-Type: application/json' -d '{body}' http://127.0.0.1:8080/api/users"
            )
            assert status == "401", status
            machine.succeed(
                f"curl -fsS -X POST -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{body}' http://127.0.0.1:8080/api/users"
            )
            users = json.loads(machine.succeed("curl -fsS http://127.0.0.1:8080/api/users"))
            assert any(u["email"] == f"ada@{machine.name}.example" for u in users["items"]), users

        with subtest(f"{machine.name}: X-Forwarded-For is believed from a trusted proxy only"):
            # postgres trusts 127.0.0.1, where this curl comes from; sqlite trusts no proxy.
            expected = "203.0.113.7" if machine is postgres else "127.0.0.1"
            request_id = f"forwarded-{machine.name}"
            machine.succeed(f"curl -fsS -H 'X-Forwarded-For: 203.0.113.7' -H 'X-Request-ID: {request_id}' http://127.0.0.1:8080/health")
            journal = machine.succeed("journalctl -u devsecops-app -o cat --no-pager")
            lines = [json.loads(line) for line in journal.splitlines() if request_id in line]
            assert [line.get("client_address") for line in lines if line.get("event") == "access"] == [expected], lines

        with subtest(f"{machine.name}: sandbox"):
            # systemd rates the unit's exposure from 0 (locked down) to 10; keep it "OK" or better.
            rating = machine.succeed("systemd-analyze security devsecops-app.service --no-pager")
            exposure = float(re.search(r"Overall exposure level for devsecops-app\.service: (\d+\.\d)", rating).group(1))
            assert exposure < 2.0, rating
            pid = main_pid(machine)
            caps = machine.succeed(f"grep -E '^Cap(Eff|Prm|Bnd):' /proc/{pid}/status")
            assert all(line.split()[1] == "0000000000000000" for line in caps.splitlines()), caps
            uid = machine.succeed(f"stat -c %u /proc/{pid}").strip()
            assert uid.isdigit() and uid != "0", uid

        with subtest(f"{machine.name}: SIGTERM drains and exits within the bound"):
            machine.succeed("timeout 15 systemctl stop devsecops-app")
            journal = machine.succeed("journalctl -u devsecops-app --no-pager")
            assert "readiness is now 503" in journal, journal
            assert "Killing process" not in journal, journal

    with subtest("sqlite: the timer's backup runs beside the service, keeps its newest, and is exported"):
        timers = sqlite.succeed("systemctl list-timers --all --no-pager devsecops-app-backup.timer")
        assert "devsecops-app-backup.service" in timers, timers
        sqlite.succeed("systemctl start devsecops-app")
        sqlite.wait_until_succeeds("curl -fsS http://127.0.0.1:8080/ready", timeout=60)
        for _ in range(3):
            sqlite.succeed("systemctl start devsecops-app-backup.service")
        copies = sqlite.succeed("ls /var/lib/devsecops-app-backups").split()
        assert len(copies) == 2 and all(re.fullmatch(r"devsecops-app-.+\.db", c) for c in copies), copies
        metrics = sqlite.succeed("curl -fsS http://127.0.0.1:9464/metrics")
        (recorded,) = re.findall(r"^app_backup_last_success_timestamp_seconds (\S+)$", metrics, re.M)
        assert float(recorded) > 0, recorded
        rating = sqlite.succeed("systemd-analyze security devsecops-app-backup.service --no-pager")
        exposure = float(re.search(r"Overall exposure level for devsecops-app-backup\.service: (\d+\.\d)", rating).group(1))
        assert exposure < 2.0, rating

    with subtest("sqlite: a restore is refused while the service runs, and brings the backup back once stopped"):
        token = sqlite.succeed("cat ${tokenFile}").strip()
        later = json.dumps({"name": "Later", "email": "later@sqlite.example"})
        sqlite.succeed(
            f"curl -fsS -X POST -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{later}' http://127.0.0.1:8080/api/users"
        )
        newest = sorted(copies)[-1]
        sqlite.fail(f"systemctl start devsecops-app-restore@{newest}.service")
        sqlite.succeed("systemctl stop devsecops-app")
        sqlite.succeed(f"systemctl start devsecops-app-restore@{newest}.service", "systemctl start devsecops-app")
        sqlite.wait_until_succeeds("curl -fsS http://127.0.0.1:8080/ready", timeout=60)
        users = json.loads(sqlite.succeed("curl -fsS http://127.0.0.1:8080/api/users"))
        emails = {u["email"] for u in users["items"]}
        assert "ada@sqlite.example" in emails and "later@sqlite.example" not in emails, emails

    with subtest("postgres: data survives a restart"):
        postgres.succeed("systemctl start devsecops-app")
        postgres.wait_until_succeeds("curl -fsS http://127.0.0.1:8080/ready", timeout=60)
        users = json.loads(postgres.succeed("curl -fsS http://127.0.0.1:8080/api/users"))
        assert any(u["email"] == "ada@postgres.example" for u in users["items"]), users

    with subtest("postgres: the percent-encoded URL reaches the service as written"):
        # The running process' own environment, one variable a line: systemctl show would print
        # Environment= shell-quoted (a URL with ? or & comes back in double quotes).
        environ = postgres.succeed(f"tr '\\0' '\\n' < /proc/{main_pid(postgres)}/environ").splitlines()
        assert "DATABASE_URL=${databaseUrl}" in environ, environ
  '';
}
