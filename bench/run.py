#!/usr/bin/env python3
"""Load benchmark of devsecops-app with wrk (and pgbench for the database baseline).

Prints, per scenario: requests/s, p50, p99, CPU time per request and peak RSS; then the ratios the
service is held to (see BENCHMARKS.md). Started by `bench/run.sh`, which installs wrk and PostgreSQL
and builds the release binaries. Loopback only; every load run is bounded by --duration.

    bench/run.sh                 # 10 s per scenario
    bench/run.sh --duration 3    # a quick look
"""

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
SERVICE = os.path.join(TARGET, "release", "devsecops-app")
BARE = os.path.join(TARGET, "release", "examples", "bare-health")
# A fresh strong token per run: production mode refuses weak ones, and nothing secret is stored.
TOKEN = secrets.token_hex(24)
CLK_TCK = os.sysconf("SC_CLK_TCK")

TARGETS = {
    "health_cpu_us_max": 15.0,
    "health_vs_bare_min": 0.9,
    "rss_mb_max_sqlite": 20.0,
    "start_to_ready_ms_max": 100.0,
    "users_vs_pgbench_min": 0.7,
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def raw_ready(port):
    """Cheapest possible readiness poll (no urllib overhead), for start-to-ready timing."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


class Server:
    def __init__(self, binary, env, log_path):
        self.port = free_port()
        full_env = {"PATH": os.environ.get("PATH", ""), "PORT": str(self.port), "HOST": "127.0.0.1"}
        full_env.update(env)
        self.log = open(log_path, "wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([binary], env=full_env, stdout=self.log, stderr=subprocess.STDOUT)
        self.ready_ms = None

    def wait_ready(self, path="/ready"):
        deadline = time.perf_counter() + 20
        while time.perf_counter() < deadline:
            if path == "/ready" and raw_ready(self.port) or path != "/ready" and http_status(self.port, path) == 200:
                self.ready_ms = (time.perf_counter() - self.started) * 1000
                return
            if self.proc.poll() is not None:
                self.log.close()
                with open(self.log.name, errors="replace") as f:
                    tail = f.read()[-2000:]
                raise SystemExit(f"{self.proc.args[0]} exited with {self.proc.returncode}:\n{tail}")
            time.sleep(0.001)
        raise SystemExit("server did not become ready in 20 s")

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def reset_peak_rss(self):
        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
            f.write("5")

    def peak_rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()


def parse_latency(text, label):
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(port, path, duration, connections, script=None):
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        cmd += ["-s", script]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": requests,
        "rps": rps,
        "p50_ms": parse_latency(out, "50"),
        "p99_ms": parse_latency(out, "99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def measure(server, path, duration, connections, script=None):
    server.reset_peak_rss()
    cpu_before = server.cpu_seconds()
    result = wrk(server.port, path, duration, connections, script)
    result["cpu_us_per_request"] = (server.cpu_seconds() - cpu_before) / max(result["requests"], 1) * 1e6
    result["peak_rss_mb"] = server.peak_rss_mb()
    return result


def post_script(directory):
    path = os.path.join(directory, "post.lua")
    with open(path, "w") as f:
        f.write(
            """
-- thread_id is a global each wrk thread gets from setup(); counter is per thread.
local counter = 0
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
end
function request()
  counter = counter + 1
  local body = string.format('{"name":"Load %d","email":"load-%d-%d-%d@example.com"}',
    counter, thread_id, counter, os.time())
  return wrk.format("POST", "/api/users", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer TOKEN_HERE",
  }, body)
end
""".replace("TOKEN_HERE", TOKEN)
        )
    return path


def psql(admin_url, sql, db=None):
    url = admin_url if db is None else admin_url.rsplit("/", 1)[0] + "/" + db
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True, capture_output=True)


def pgbench(db_url, duration, connections, directory):
    script = os.path.join(directory, "select.sql")
    with open(script, "w") as f:
        f.write("SELECT id, name, email, created_at, updated_at FROM users WHERE id > 0 ORDER BY id LIMIT 21;\n")
    out = subprocess.run(
        ["pgbench", "-n", "-M", "prepared", f"-c{connections}", "-j2", f"-T{duration}", "-f", script, db_url],
        check=True, capture_output=True, text=True,
    ).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def count_access_lines(log_path):
    with open(log_path, "rb") as f:
        return sum(1 for line in f if b'"event":"access"' in line)


def total_requests(port):
    """Requests answered so far, once the ones wrk left in flight have finished."""
    deadline = time.time() + 10
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
            text = r.read().decode()
        in_flight = [l for l in text.splitlines() if l.startswith("http_requests_in_flight ")]
        if (in_flight and float(in_flight[0].split()[1]) <= 1) or time.time() > deadline:
            break
        time.sleep(0.1)
    return int(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("http_requests_total{")))


def row(name, r):
    return (f"{name:<34} {r['rps']:>10.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['cpu_us_per_request']:>10.1f} {r['peak_rss_mb']:>8.1f} {r['non_2xx']:>7}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run (default 10)")
    parser.add_argument("--connections", type=int, default=10, help="concurrent connections (default 10)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    admin_url = os.environ["TEST_POSTGRES_URL"]
    results = {"duration_s": args.duration, "connections": args.connections}
    workdir = tempfile.mkdtemp(prefix="devsecops-bench-")
    common = {"API_TOKEN": TOKEN, "APP_ENV": "production", "RATE_LIMIT_PER_SECOND": "0", "WORKERS": "2",
              "LOG_LEVEL": "info"}

    # Start-to-ready, cold (fresh SQLite file, migrations included) and warm, median of 5.
    cold, warm = [], []
    for i in range(5):
        db = f"sqlite://{workdir}/start-{i}.db"
        for bucket in (cold, warm):
            s = Server(SERVICE, {**common, "DATABASE_URL": db}, os.path.join(workdir, "start.log"))
            s.wait_ready()
            bucket.append(s.ready_ms)
            s.stop()
    results["start_to_ready_ms"] = {"cold": sorted(cold)[2], "warm": sorted(warm)[2]}

    # Bare actix-web baseline.
    bare = Server(BARE, {"WORKERS": "2"}, os.path.join(workdir, "bare.log"))
    bare.wait_ready("/health")
    results["bare_health"] = measure(bare, "/health", args.duration, args.connections)
    bare.stop()

    # Embedded database (SQLite): /health and reads, for the RSS target.
    sqlite_log = os.path.join(workdir, "sqlite.log")
    s = Server(SERVICE, {**common, "DATABASE_URL": f"sqlite://{workdir}/bench.db"}, sqlite_log)
    s.wait_ready()
    results["sqlite_health"] = measure(s, "/health", args.duration, args.connections)
    results["sqlite_post_users"] = measure(s, "/api/users", args.duration, args.connections, post_script(workdir))
    results["sqlite_list_users"] = measure(s, "/api/users?limit=20", args.duration, args.connections)
    served = total_requests(s.port) + 1  # this scrape logs a line too
    s.stop()
    results["sqlite_access_lines"] = {"served": served, "logged": count_access_lines(sqlite_log)}

    # PostgreSQL with 10,000 users.
    db_name = "bench_users"
    psql(admin_url, f"DROP DATABASE IF EXISTS {db_name}")
    psql(admin_url, f"CREATE DATABASE {db_name}")
    db_url = admin_url.rsplit("/", 1)[0] + "/" + db_name
    pg_log = os.path.join(workdir, "postgres.log")
    p = Server(SERVICE, {**common, "DATABASE_URL": db_url, "DB_MAX_CONNECTIONS": str(args.connections)}, pg_log)
    p.wait_ready()
    psql(admin_url, "INSERT INTO users (name, email, created_at, updated_at) "
         "SELECT 'User ' || g, 'user' || g || '@example.com', now(), now() FROM generate_series(1, 10000) g",
         db=db_name)
    psql(admin_url, "VACUUM ANALYZE users", db=db_name)
    results["postgres_health"] = measure(p, "/health", args.duration, args.connections)
    results["postgres_list_users"] = measure(p, "/api/users?limit=20", args.duration, args.connections)
    results["postgres_post_users"] = measure(p, "/api/users", args.duration, args.connections, post_script(workdir))
    served = total_requests(p.port) + 1
    p.stop()
    results["postgres_access_lines"] = {"served": served, "logged": count_access_lines(pg_log)}
    results["pgbench_select_tps"] = pgbench(db_url, args.duration, args.connections, workdir)
    psql(admin_url, f"DROP DATABASE IF EXISTS {db_name}")

    header = f"{'scenario':<34} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>10} {'RSS MB':>8} {'non-2xx':>7}"
    print(f"\nwrk -t2 -c{args.connections} -d{args.duration}s on {os.cpu_count()} cores\n")
    print(header)
    print("-" * len(header))
    for key in ("bare_health", "sqlite_health", "sqlite_list_users", "sqlite_post_users",
                "postgres_health", "postgres_list_users", "postgres_post_users"):
        print(row(key, results[key]))
    print(f"{'pgbench same SELECT':<34} {results['pgbench_select_tps']:>10.0f}")

    health_ratio = results["sqlite_health"]["rps"] / results["bare_health"]["rps"]
    users_ratio = results["postgres_list_users"]["rps"] / results["pgbench_select_tps"]
    peak_rss = max(results[k]["peak_rss_mb"] for k in ("sqlite_health", "sqlite_list_users", "sqlite_post_users"))
    checks = [
        ("instrumented /health vs bare actix-web", f"{health_ratio:.2f}x", f">= {TARGETS['health_vs_bare_min']}x",
         health_ratio >= TARGETS["health_vs_bare_min"]),
        ("CPU per /health request", f"{results['sqlite_health']['cpu_us_per_request']:.1f} us",
         f"<= {TARGETS['health_cpu_us_max']} us",
         results["sqlite_health"]["cpu_us_per_request"] <= TARGETS["health_cpu_us_max"]),
        ("peak RSS under load (SQLite)", f"{peak_rss:.1f} MB", f"<= {TARGETS['rss_mb_max_sqlite']} MB",
         peak_rss <= TARGETS["rss_mb_max_sqlite"]),
        ("start to ready (cold / warm)",
         f"{results['start_to_ready_ms']['cold']:.1f} / {results['start_to_ready_ms']['warm']:.1f} ms",
         f"< {TARGETS['start_to_ready_ms_max']} ms",
         results["start_to_ready_ms"]["cold"] < TARGETS["start_to_ready_ms_max"]),
        ("GET /api/users?limit=20 vs pgbench", f"{users_ratio:.2f}x", f">= {TARGETS['users_vs_pgbench_min']}x",
         users_ratio >= TARGETS["users_vs_pgbench_min"]),
    ]
    for backend in ("sqlite", "postgres"):
        lines = results[f"{backend}_access_lines"]
        checks.append((f"access-log lines = requests ({backend})", f"{lines['logged']} / {lines['served']}",
                       "equal", lines["logged"] == lines["served"]))
    print()
    for name, value, target, ok in checks:
        print(f"{name:<42} {value:>18}   target {target:<10} {'met' if ok else 'MISSED'}")
    results["checks"] = [{"name": n, "value": v, "target": t, "met": ok} for n, v, t, ok in checks]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    subprocess.run(["rm", "-rf", workdir])
    return 0


if __name__ == "__main__":
    sys.exit(main())
