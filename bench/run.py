#!/usr/bin/env python3
"""Load benchmark of devsecops-app with wrk, against the stacks users would pick instead.

In one run, on the same machine and the same PostgreSQL data: the service (SQLite and PostgreSQL),
a bare actix-web handler, pgbench running the same SELECT, and two Python peers with the same worker
count, Flask on gunicorn and FastAPI on uvicorn (bench/peers/, their settings documented there).
Prints, per scenario: requests/s, p50, p99, CPU time per request and peak RSS (summed over a
stack's processes); the ratios between stacks; the log-write modes side by side with the access-log
lines lost when the service is stopped (SIGTERM) or killed (SIGKILL) under load; and the targets the
service is held to (see BENCHMARKS.md). Started by `bench/run.sh`, which installs wrk, PostgreSQL and
the peers' virtualenv and builds the release binaries. Loopback only; every load run is bounded by
--duration.

    bench/run.sh                 # 10 s per scenario
    bench/run.sh --duration 3    # a quick look
"""

import argparse
import atexit
import json
import os
import re
import secrets
import shutil
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
LOG_LOSS = os.path.join(TARGET, "release", "examples", "log-loss")
PEERS = os.path.join(ROOT, "bench", "peers")
PEER_VENV = os.environ.get("BENCH_PEER_VENV", "")
# A fresh strong token per run: production mode refuses weak ones, and nothing secret is stored.
TOKEN = secrets.token_hex(24)
CLK_TCK = os.sysconf("SC_CLK_TCK")

TARGETS = {
    "health_cpu_us_max": 15.0,
    "health_vs_bare_min": 0.9,
    "kill_lost_traffic_ms_max": 1.0,
    "rss_mb_max_sqlite": 20.0,
    "sqlite_p99_over_p50_max": 10.0,
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


STARTED = []


@atexit.register
def stop_leftovers():
    """A run that fails half-way leaves no server behind."""
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()


class Server:
    """A server under test: one process, or a master with workers (CPU and RSS cover them all)."""

    def __init__(self, command, env, log_path, cwd=None):
        self.port = free_port()
        # The service serves /metrics on its own internal listener (METRICS_PORT); the others ignore it.
        self.metrics_port = free_port()
        full_env = {"PATH": os.environ.get("PATH", ""), "PORT": str(self.port), "HOST": "127.0.0.1",
                    "METRICS_PORT": str(self.metrics_port)}
        full_env.update(env)
        self.log = open(log_path, "wb")
        self.started = time.perf_counter()
        command = [command] if isinstance(command, str) else command
        command = [c.replace("{port}", str(self.port)) for c in command]
        self.proc = subprocess.Popen(command, env=full_env, stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd)
        STARTED.append(self.proc)
        self.ready_ms = None

    def wait_ready(self, path="/ready"):
        deadline = time.perf_counter() + 30
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
        raise SystemExit(f"{self.proc.args[0]} did not become ready in 30 s")

    def pids(self):
        """The server's process and its descendants (gunicorn and uvicorn fork workers)."""
        children = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                children.setdefault(ppid, []).append(int(entry))
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def cpu_seconds(self):
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # utime, stime, and the CPU of children already reaped (cutime, cstime).
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        return total / CLK_TCK

    def reset_peak_rss(self):
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass

    def peak_rss_mb(self):
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/status") as f:
                    total += next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
            except (OSError, StopIteration):
                pass
        return total / 1024

    def write_syscalls(self):
        """write(2)-family calls so far (syscw of /proc/PID/io): log writes, the response path uses send."""
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/io") as f:
                    total += next(int(l.split()[1]) for l in f if l.startswith("syscw:"))
            except (OSError, StopIteration):
                pass
        return total

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


# wrk's --latency table stops at p99; its Lua done() hook reads any percentile of the same histogram.
TAIL_REPORT = """
function done(summary, latency, requests)
  io.write(string.format("p99.9_us %d\\n", latency:percentile(99.9)))
end
"""


def wrk(port, path, duration, connections, script=None):
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        if script:
            with open(script) as f:
                lua.write(f.read())
        lua.write(TAIL_REPORT)
    cmd += ["-s", lua.name]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    try:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(lua.name)
    tail = re.search(r"^p99\.9_us (\d+)$", out, re.M)
    if not tail:
        raise SystemExit(f"wrk printed no p99.9 (its Lua done() hook did not run):\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": requests,
        "rps": rps,
        "p50_ms": parse_latency(out, "50"),
        "p99_ms": parse_latency(out, "99"),
        "p999_ms": int(tail.group(1)) / 1000,
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def measure(server, path, duration, connections, script=None):
    server.reset_peak_rss()
    cpu_before, writes_before = server.cpu_seconds(), server.write_syscalls()
    result = wrk(server.port, path, duration, connections, script)
    result["cpu_us_per_request"] = (server.cpu_seconds() - cpu_before) / max(result["requests"], 1) * 1e6
    result["writes_per_request"] = (server.write_syscalls() - writes_before) / max(result["requests"], 1)
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


def log_directory(workdir):
    """Where the servers' logs go: a RAM-backed directory, off the databases' disk. Deployed, the
    service logs to a pipe (the container runtime's); a benchmark log file on the database's disk
    instead leaves hundreds of megabytes of dirty pages whose writeback (the kernel starts it 30 s
    later, during a later scenario) makes every SQLite and PostgreSQL commit's fsync wait on the
    filesystem journal. That interaction is measured on its own ("while its disk writes back a log")."""
    shm = "/dev/shm"
    if (os.path.isdir(shm) and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= LOG_SPACE_BYTES
            and available_memory() >= LOG_SPACE_BYTES):
        return tempfile.mkdtemp(prefix="devsecops-bench-logs-", dir=shm)
    print(f"note: {shm} is missing, read-only or has under {LOG_SPACE_BYTES >> 30} GiB free: logs go to "
          f"{workdir}, on the databases' disk; commit tails may include the kernel's writeback of those logs",
          file=sys.stderr)
    return workdir


# A run writes about 1 GB of logs (a million access lines per /health scenario at the default 10 s).
LOG_SPACE_BYTES = 3 << 30


def available_memory():
    """MemAvailable: tmpfs reports its size limit as free space, not the memory behind it."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return 0


def keep_log_tails(logdir, workdir, lines=200):
    """On a failed run: the end of each server log, copied to the kept disk directory, before the
    RAM-backed directory goes."""
    for name in sorted(os.listdir(logdir)):
        path = os.path.join(logdir, name)
        try:
            with open(path, "rb") as f:
                f.seek(max(0, os.path.getsize(path) - 256 * 1024))
                tail = f.read().splitlines()[-lines:]
            with open(os.path.join(workdir, name + ".tail"), "wb") as out:
                out.write(b"\n".join(tail) + b"\n")
        except OSError as e:  # a directory, a vanished file, a full disk: the rest still goes
            print(f"could not keep the end of {path}: {e}", file=sys.stderr)
    print(f"the logs' last {lines} lines are in {workdir}", file=sys.stderr)


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


def log_loss(common, workdir, logdir, mode, sig, after_ms):
    """Access-log lines missing for responses clients received, when the service gets `sig` under load."""
    log_path = os.path.join(logdir, f"loss-{mode}-{sig}.log")
    env = {**common, "LOG_WRITE": mode, "DATABASE_URL": f"sqlite://{workdir}/loss-{mode}-{sig}.db"}
    s = Server(SERVICE, env, log_path)
    s.wait_ready()
    out = subprocess.run([LOG_LOSS, "--port", str(s.port), "--pid", str(s.proc.pid), "--signal", sig,
                          "--after-ms", str(after_ms)], check=True, capture_output=True, text=True).stdout
    s.proc.wait(timeout=60)
    s.log.close()
    client = json.loads(out)
    logged = set()
    with open(log_path, "rb") as f:
        for line in f:
            m = re.search(rb'"request_id":"ll-(\d+)-(\d+)"', line)
            if m:
                logged.add((int(m.group(1)), int(m.group(2))))
    lost = sum(1 for conn, done in enumerate(client["completed_per_connection"])
               for seq in range(1, done + 1) if (conn, seq) not in logged)
    rate = client["responses"] / client["signalled_after_s"]
    return {"mode": mode, "signal": sig, "responses": client["responses"], "lost": lost,
            "lost_traffic_ms": lost / rate * 1000 if rate else float("nan"), "rps": rate}


def start_peer(name, port_env, db_url, workdir, logdir):
    """A peer stack on the benchmark's PostgreSQL data, with its own metrics directory."""
    metrics_dir = os.path.join(workdir, f"{name}-metrics")
    os.makedirs(metrics_dir, exist_ok=True)
    env = {**port_env, "DATABASE_URL": db_url, "WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    bin_dir = os.path.join(PEER_VENV, "bin")
    if name == "flask":
        command = [os.path.join(bin_dir, "gunicorn"), "-c", "gunicorn_conf.py", "flask_app:app"]
    else:
        command = [os.path.join(bin_dir, "uvicorn"), "fastapi_app:app", "--host", "127.0.0.1", "--port", "{port}",
                   "--workers", "2", "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    server = Server(command, env, os.path.join(logdir, f"{name}.log"), cwd=PEERS)
    server.wait_ready("/health")
    return server


ROWS = [
    ("bare_health", "bare actix-web /health"),
    ("sqlite_health", "service /health (SQLite)"),
    ("sqlite_health_sync", "  same, LOG_WRITE=sync"),
    ("sqlite_list_users", "service list users (SQLite)"),
    ("sqlite_post_users", "service create user (SQLite)"),
    ("sqlite_post_users_writeback", "  same, log written back on its disk"),
    ("postgres_health", "service /health (PostgreSQL)"),
    ("postgres_list_users", "service list users (PostgreSQL)"),
    ("postgres_post_users", "service create user (PostgreSQL)"),
    ("flask_health", "Flask+gunicorn /health"),
    ("flask_list_users", "Flask+gunicorn list users"),
    ("fastapi_health", "FastAPI+uvicorn /health"),
    ("fastapi_list_users", "FastAPI+uvicorn list users"),
]


def row(name, r):
    return (f"{name:<34} {r['rps']:>10.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r.get('p999_ms', float('nan')):>8.2f} "
            f"{r['cpu_us_per_request']:>10.1f} {r['peak_rss_mb']:>8.1f} {r['non_2xx']:>7}")


def instructions_per_request(common, workdir):
    """User-space instructions per /health request under callgrind, which a busy machine does not
    change: runs of 2 s and 6 s, the difference in instructions over the difference in requests, so
    start-up and shutdown cancel out. Kernel work (the write(2) calls) is not in these counts."""
    def once(binary, env, seconds, tag):
        out = os.path.join(workdir, f"callgrind-{tag}-{seconds}.out")
        s = Server(["valgrind", "--tool=callgrind", "--vgdb=no", f"--callgrind-out-file={out}", binary],
                   env, os.path.join(workdir, f"callgrind-{tag}.log"))
        s.wait_ready("/health")
        n = wrk(s.port, "/health", seconds, 10)["requests"]
        s.stop()
        with open(out) as f:
            ir = sum(int(l.split()[1]) for l in f if l.startswith("summary:"))
        return n, ir

    counts = {}
    for tag, binary, env in (("bare", BARE, {"WORKERS": "2"}),
                             ("batched", SERVICE, {**common, "LOG_WRITE": "batched",
                                                   "DATABASE_URL": f"sqlite://{workdir}/ir-batched.db"}),
                             ("sync", SERVICE, {**common, "LOG_WRITE": "sync",
                                                "DATABASE_URL": f"sqlite://{workdir}/ir-sync.db"})):
        (n1, i1), (n2, i2) = once(binary, env, 2, tag), once(binary, env, 6, tag)
        counts[tag] = (i2 - i1) / (n2 - n1)
    return counts


def summarize(paths):
    """Markdown tables for BENCHMARKS.md from the --json files of several runs: each scenario's range
    over the runs, the ratios and log-loss figures per run, and each target met in how many runs."""
    runs = [json.load(open(p)) for p in paths]
    n = len(runs)

    def span(values, fmt):
        lo, hi = min(values), max(values)
        return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}–{fmt.format(hi)}"

    print(f"| scenario ({n} runs, min–max) | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/req | RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for key, label in ROWS:
        if not all(key in r for r in runs):
            continue
        rs = [r[key] for r in runs]
        print(f"| {label.strip()} | {span([x['rps'] for x in rs], '{:.0f}')} | {span([x['p50_ms'] for x in rs], '{:.2f}')} "
              f"| {span([x['p99_ms'] for x in rs], '{:.1f}')} | {span([x.get('p999_ms', float('nan')) for x in rs], '{:.1f}')} "
              f"| {span([x['cpu_us_per_request'] for x in rs], '{:.1f}')} "
              f"| {span([x['peak_rss_mb'] for x in rs], '{:.1f}')} |")
    print(f"| pgbench, same SELECT | {span([r['pgbench_select_tps'] for r in runs], '{:.0f}')} | | | | | |")
    print()
    print("| ratio, per run | " + " | ".join(f"run {i + 1}" for i in range(n)) + " |")
    print("|---|" + "---|" * n)
    ratios = [("service /health vs bare actix-web", lambda r: r["sqlite_health"]["rps"] / r["bare_health"]["rps"]),
              ("  same, LOG_WRITE=sync", lambda r: r["sqlite_health_sync"]["rps"] / r["bare_health"]["rps"]),
              ("service list users vs pgbench", lambda r: r["postgres_list_users"]["rps"] / r["pgbench_select_tps"])]
    for peer in ("flask", "fastapi"):
        for what in ("health", "list_users"):
            ratios.append((f"{peer} {what.replace('_', ' ')} vs the service (req/s)",
                           lambda r, k=f"{peer}_{what}", o=f"postgres_{what}": r[k]["rps"] / r[o]["rps"]))
            ratios.append((f"{peer} {what.replace('_', ' ')} vs the service (CPU/req)",
                           lambda r, k=f"{peer}_{what}", o=f"postgres_{what}":
                           r[k]["cpu_us_per_request"] / r[o]["cpu_us_per_request"]))
    for label, f in ratios:
        print(f"| {label.strip()} | " + " | ".join(f"{f(r):.2f}x" for r in runs) + " |")
    print()
    print("| write(2) calls per /health request | " + " | ".join(f"run {i + 1}" for i in range(n)) + " |")
    print("|---|" + "---|" * n)
    for key, label in (("sqlite_health", "LOG_WRITE=batched"), ("sqlite_health_sync", "LOG_WRITE=sync"),
                       ("bare_health", "bare actix-web")):
        print(f"| {label} | " + " | ".join(f"{r[key].get('writes_per_request', float('nan')):.3f}" for r in runs) + " |")
    if all("instructions_per_health_request" in r for r in runs):
        print()
        print("| instructions per /health request (callgrind) | " + " | ".join(f"run {i + 1}" for i in range(n)) + " |")
        print("|---|" + "---|" * n)
        for key, label in (("bare", "bare actix-web"), ("batched", "LOG_WRITE=batched"), ("sync", "LOG_WRITE=sync")):
            print(f"| {label} | " + " | ".join(f"{r['instructions_per_health_request'][key]:,.0f}" for r in runs) + " |")
    print()
    print("| log lines lost under load | " + " | ".join(f"run {i + 1}" for i in range(n)) + " |")
    print("|---|" + "---|" * n)
    for i, loss in enumerate(runs[0]["log_loss"]):
        cells = []
        for r in runs:
            l = r["log_loss"][i]
            cells.append(f"{l['lost']} of {l['responses']} ({l['lost_traffic_ms']:.3f} ms)")
        print(f"| LOG_WRITE={loss['mode']}, SIG{loss['signal']} | " + " | ".join(cells) + " |")
    print()
    print("| target | " + " | ".join(f"run {i + 1}" for i in range(n)) + " | met in |")
    print("|---|" + "---|" * n + "---|")
    for i, check in enumerate(runs[0]["checks"]):
        cells = [r["checks"][i]["value"] for r in runs]
        met = sum(1 for r in runs if r["checks"][i]["met"])
        print(f"| {check['name']} ({check['target']}) | " + " | ".join(cells) + f" | {met} of {n} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run (default 10)")
    parser.add_argument("--connections", type=int, default=10, help="concurrent connections (default 10)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per /health request under callgrind (about a minute)")
    parser.add_argument("--summarize", nargs="+", metavar="JSON",
                        help="print BENCHMARKS.md tables from the --json files of earlier runs, run nothing")
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize)
        return 0
    if not PEER_VENV:
        raise SystemExit("BENCH_PEER_VENV is not set: run bench/run.sh, which installs the peers")
    admin_url = os.environ["TEST_POSTGRES_URL"]
    results = {"duration_s": args.duration, "connections": args.connections}
    workdir = tempfile.mkdtemp(prefix="devsecops-bench-")
    logdir = log_directory(workdir)
    # SIGTERM and SIGHUP (a CI abort, `timeout`) become an exit, so that atexit stops the servers
    # and cleans up; a second signal during that is ignored.
    def exit_on(signum, _frame):
        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        sys.exit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, exit_on)
    if logdir != workdir:
        # RAM-backed: never left behind; a failed run keeps the logs' tails on disk.
        def remove_logs():
            if os.path.isdir(logdir):  # still there: the run did not finish
                try:
                    if os.path.isdir(workdir):
                        keep_log_tails(logdir, workdir)
                finally:
                    shutil.rmtree(logdir, True)
        atexit.register(remove_logs)
    common = {"API_TOKEN": TOKEN, "APP_ENV": "production", "RATE_LIMIT_PER_SECOND": "0", "WORKERS": "2",
              "LOG_LEVEL": "info"}

    # Start-to-ready, cold (fresh SQLite file, migrations included) and warm, median of 5.
    cold, warm = [], []
    for i in range(5):
        db = f"sqlite://{workdir}/start-{i}.db"
        for bucket in (cold, warm):
            s = Server(SERVICE, {**common, "DATABASE_URL": db}, os.path.join(logdir, "start.log"))
            s.wait_ready()
            bucket.append(s.ready_ms)
            s.stop()
    results["start_to_ready_ms"] = {"cold": sorted(cold)[2], "warm": sorted(warm)[2]}

    # Bare actix-web baseline, then the instrumented /health in both log modes right after it.
    bare = Server(BARE, {"WORKERS": "2"}, os.path.join(logdir, "bare.log"))
    bare.wait_ready("/health")
    results["bare_health"] = measure(bare, "/health", args.duration, args.connections)
    bare.stop()
    sync_log = os.path.join(logdir, "sqlite-sync.log")
    s = Server(SERVICE, {**common, "LOG_WRITE": "sync", "DATABASE_URL": f"sqlite://{workdir}/sync.db"}, sync_log)
    s.wait_ready()
    results["sqlite_health_sync"] = measure(s, "/health", args.duration, args.connections)
    s.stop()

    # Embedded database (SQLite), default log mode: /health, writes and reads, for the RSS target.
    sqlite_log = os.path.join(logdir, "sqlite.log")
    s = Server(SERVICE, {**common, "DATABASE_URL": f"sqlite://{workdir}/bench.db"}, sqlite_log)
    s.wait_ready()
    results["sqlite_health"] = measure(s, "/health", args.duration, args.connections)
    results["sqlite_post_users"] = measure(s, "/api/users", args.duration, args.connections, post_script(workdir))
    results["sqlite_list_users"] = measure(s, "/api/users?limit=20", args.duration, args.connections)
    served = total_requests(s.metrics_port) + 1  # this scrape logs a line too
    s.stop()
    results["sqlite_access_lines"] = {"served": served, "logged": count_access_lines(sqlite_log)}

    # The same writes while the kernel writes back the service's own log on the database's disk:
    # a /health load fills the page cache with its log, then `sync` writes it back during the load
    # (ext4's ordered mode makes each commit's fsync wait for that data).
    s = Server(SERVICE, {**common, "DATABASE_URL": f"sqlite://{workdir}/writeback.db"},
               os.path.join(workdir, "writeback.log"))
    s.wait_ready()
    wrk(s.port, "/health", args.duration, args.connections)
    sync = subprocess.Popen(["sync"])
    results["sqlite_post_users_writeback"] = measure(s, "/api/users", args.duration, args.connections,
                                                     post_script(workdir))
    sync.wait()
    s.stop()
    # Its log was on the databases' disk: gone and written back before the next scenarios.
    os.unlink(os.path.join(workdir, "writeback.log"))
    subprocess.run(["sync"], check=True)

    # PostgreSQL with 10,000 users: the service, then the peers on the same data, then pgbench.
    db_name = "bench_users"
    psql(admin_url, f"DROP DATABASE IF EXISTS {db_name}")
    psql(admin_url, f"CREATE DATABASE {db_name}")
    db_url = admin_url.rsplit("/", 1)[0] + "/" + db_name
    pg_log = os.path.join(logdir, "postgres.log")
    p = Server(SERVICE, {**common, "DATABASE_URL": db_url, "DB_MAX_CONNECTIONS": str(args.connections)}, pg_log)
    p.wait_ready()
    psql(admin_url, "INSERT INTO users (name, email, created_at, updated_at) "
         "SELECT 'User ' || g, 'user' || g || '@example.com', now(), now() FROM generate_series(1, 10000) g",
         db=db_name)
    psql(admin_url, "VACUUM ANALYZE users", db=db_name)
    results["postgres_health"] = measure(p, "/health", args.duration, args.connections)
    results["postgres_list_users"] = measure(p, "/api/users?limit=20", args.duration, args.connections)
    results["postgres_post_users"] = measure(p, "/api/users", args.duration, args.connections, post_script(workdir))
    served = total_requests(p.metrics_port) + 1
    p.stop()
    results["postgres_access_lines"] = {"served": served, "logged": count_access_lines(pg_log)}
    for peer in ("flask", "fastapi"):
        server = start_peer(peer, {}, db_url, workdir, logdir)
        results[f"{peer}_health"] = measure(server, "/health", args.duration, args.connections)
        results[f"{peer}_list_users"] = measure(server, "/api/users?limit=20", args.duration, args.connections)
        server.stop()
    results["pgbench_select_tps"] = pgbench(db_url, args.duration, args.connections, workdir)
    psql(admin_url, f"DROP DATABASE IF EXISTS {db_name}")

    if args.instructions:
        results["instructions_per_health_request"] = instructions_per_request(common, workdir)

    # Lines lost when the service is stopped or killed under load, in both log modes.
    after_ms = max(1000, args.duration * 300)
    results["log_loss"] = [log_loss(common, workdir, logdir, mode, sig, after_ms)
                           for mode in ("batched", "sync") for sig in ("TERM", "KILL")]

    header = f"{'scenario':<34} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>8} {'CPU us/req':>10} {'RSS MB':>8} {'non-2xx':>7}"
    print(f"\nwrk -t2 -c{args.connections} -d{args.duration}s on {os.cpu_count()} cores, 2 workers per stack\n")
    print(header)
    print("-" * len(header))
    for key, label in ROWS:
        print(row(label, results[key]))
    print(f"{'pgbench, same SELECT':<34} {results['pgbench_select_tps']:>10.0f}")

    ours_health, ours_list = results["postgres_health"], results["postgres_list_users"]
    print(f"\n{'ratio to the service (PostgreSQL)':<34} {'req/s':>10} {'CPU/req':>10} {'RSS':>8}")
    for peer in ("flask", "fastapi"):
        for what, ours in (("health", ours_health), ("list_users", ours_list)):
            r = results[f"{peer}_{what}"]
            print(f"{peer + ' ' + what:<34} {r['rps'] / ours['rps']:>9.2f}x {r['cpu_us_per_request'] / ours['cpu_us_per_request']:>9.2f}x "
                  f"{r['peak_rss_mb'] / ours['peak_rss_mb']:>7.2f}x")

    print(f"\nwrite(2) calls per /health request: LOG_WRITE=batched {results['sqlite_health']['writes_per_request']:.3f}, "
          f"sync {results['sqlite_health_sync']['writes_per_request']:.3f}, bare {results['bare_health']['writes_per_request']:.3f}")
    if "instructions_per_health_request" in results:
        ir = results["instructions_per_health_request"]
        print("instructions per /health request (callgrind, user space): "
              + ", ".join(f"{k} {v:,.0f}" for k, v in ir.items()))
    print(f"\n{'log lines lost under load':<34} {'responses':>10} {'lost':>8} {'ms of traffic':>14}")
    for loss in results["log_loss"]:
        print(f"{'LOG_WRITE=' + loss['mode'] + ', SIG' + loss['signal']:<34} {loss['responses']:>10} {loss['lost']:>8} "
              f"{loss['lost_traffic_ms']:>14.3f}")

    health_ratio = results["sqlite_health"]["rps"] / results["bare_health"]["rps"]
    sync_ratio = results["sqlite_health_sync"]["rps"] / results["bare_health"]["rps"]
    users_ratio = ours_list["rps"] / results["pgbench_select_tps"]
    peak_rss = max(results[k]["peak_rss_mb"] for k in ("sqlite_health", "sqlite_list_users", "sqlite_post_users"))
    loss = {(l["mode"], l["signal"]): l for l in results["log_loss"]}
    checks = [
        ("instrumented /health vs bare actix-web", f"{health_ratio:.2f}x (sync {sync_ratio:.2f}x)",
         f">= {TARGETS['health_vs_bare_min']}x", health_ratio >= TARGETS["health_vs_bare_min"]),
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
        ("log lines lost on SIGTERM under load", f"{loss[('batched', 'TERM')]['lost']}", "0",
         loss[("batched", "TERM")]["lost"] == 0),
        ("log lines lost on SIGKILL under load", f"{loss[('batched', 'KILL')]['lost_traffic_ms']:.3f} ms",
         f"< {TARGETS['kill_lost_traffic_ms_max']} ms",
         loss[("batched", "KILL")]["lost_traffic_ms"] < TARGETS["kill_lost_traffic_ms_max"]),
    ]
    # Judged with the log off the database's disk, as deployed behind a pipe; the writeback row is
    # reported beside it (BENCHMARKS.md, "Tail latency on SQLite").
    for key, label in (("sqlite_list_users", "list users"), ("sqlite_post_users", "create user")):
        r = results[key]
        tail = r["p99_ms"] / r["p50_ms"]
        checks.append((f"p99 / p50, {label} (SQLite, log off its disk)", f"{tail:.1f} (p99.9 {r['p999_ms']:.1f} ms)",
                       f"< {TARGETS['sqlite_p99_over_p50_max']}", tail < TARGETS["sqlite_p99_over_p50_max"]))
    for backend in ("sqlite", "postgres"):
        lines = results[f"{backend}_access_lines"]
        checks.append((f"access-log lines = requests ({backend})", f"{lines['logged']} / {lines['served']}",
                       "equal", lines["logged"] == lines["served"]))
    print()
    for name, value, target, ok in checks:
        print(f"{name:<50} {value:>22}   target {target:<10} {'met' if ok else 'MISSED'}")
    wb = results["sqlite_post_users_writeback"]
    print(f"{'p99 / p50, create user, log written back':<50} "
          f"{wb['p99_ms'] / wb['p50_ms']:>5.1f} (p99.9 {wb['p999_ms']:.1f} ms)   not a target: "
          "the kernel's writeback on the database's disk")
    results["checks"] = [{"name": n, "value": v, "target": t, "met": ok} for n, v, t, ok in checks]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    subprocess.run(["rm", "-rf", workdir, logdir])
    return 0


if __name__ == "__main__":
    sys.exit(main())
