"""The service under wrk with each Accept-Encoding: requests/s, latency, bytes and CPU per request.

Started by bench/compression.sh with the release binary; one SQLite database with 1,000 users,
two workers, rate limiting off. CPU time is the service process's (utime + stime) over the run.
"""

import argparse
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "devsecops-app")
PATH = "/api/users?limit=100"
CODINGS = ["identity", "gzip", "br", "zstd"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def seed(url, env):
    subprocess.run([BINARY, "migrate"], env={**env, "DATABASE_URL": url}, check=True,
                   stdout=subprocess.DEVNULL)
    db = sqlite3.connect(url.removeprefix("sqlite://"))
    db.executemany(
        "INSERT INTO users (name, email, email_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        [(f"User Number {i}", f"user.{i}@example.com", f"user.{i}@example.com",
          "2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z") for i in range(1000)])
    db.commit()
    db.close()


def wrk(port, coding, duration, connections):
    headers = [] if coding == "identity" else ["-H", f"Accept-Encoding: {coding}"]
    out = subprocess.run(
        ["wrk", "--latency", "-t", "2", "-c", str(connections), "-d", f"{duration}s", *headers,
         f"http://127.0.0.1:{port}{PATH}"],
        capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    read = re.search(r"requests in [\d.]+\w+, ([\d.]+)(\w+) read", out)
    scale = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}[read.group(2)]
    def latency(p):
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(\w+)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    return {"requests": requests, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": latency(50), "p99_ms": latency(99),
            "bytes_per_response": float(read.group(1)) * scale / max(requests, 1)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite://{tmp}/bench.db"
        port = free_port()
        env = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": url, "PORT": str(port),
               "METRICS_PORT": "0", "WORKERS": "2", "RATE_LIMIT_PER_SECOND": "0",
               "LOG_LEVEL": "warn"}
        seed(url, env)
        service = subprocess.Popen([BINARY], env=env, stdout=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            wrk(port, "identity", 1, args.connections)  # warm-up
            print("coding\trequests/s\tp50 ms\tp99 ms\tbytes/response\tCPU us/request")
            for coding in CODINGS:
                before = cpu_seconds(service.pid)
                r = wrk(port, coding, args.duration, args.connections)
                cpu = (cpu_seconds(service.pid) - before) / max(r["requests"], 1) * 1e6
                print(f"{coding}\t{r['rps']:.0f}\t{r['p50_ms']:.2f}\t{r['p99_ms']:.2f}\t"
                      f"{r['bytes_per_response']:.0f}\t{cpu:.0f}")
        finally:
            service.terminate()
            service.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
