#!/usr/bin/env python3
"""Benchmark of the devsecops pipeline (release build):

1. ingest + deduplicate + gate + every report for 100,000 findings in a generated SARIF of realistic
   shape (600 rules, 3,000 files, snippets, 10 % duplicates from a second tool), with wall time and
   peak RSS of each step;
2. `devsecops scan` of this repository: wall time cold (first run) and warm, and the speedup of
   running the scanners in parallel over one after another.

    bench/pipeline.sh              (builds, then runs this)
    bench/pipeline.py --findings 100000 --skip-scan
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "devsecops")


def generate_sarif(path, count, seed=20261126):
    rng = random.Random(seed)
    rules = [f"rule-{i:04d}" for i in range(600)]
    files = [f"src/module_{i // 30:03d}/file_{i:04d}.rs" for i in range(3000)]
    levels = ["error", "warning", "note", "none"]
    results = []
    for i in range(count):
        rule = rng.choice(rules)
        line = rng.randint(1, 4000)
        results.append({
            "ruleId": rule,
            "level": rng.choice(levels),
            "message": {"text": f"Potential issue {i % 977} found by {rule} in generated code path"},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": rng.choice(files)},
                "region": {"startLine": line, "endLine": line + rng.randint(0, 3),
                           "snippet": {"text": f"let value_{i % 5000} = compute({rng.randint(0, 99)});"}},
            }}],
        })
    rule_defs = [{"id": r, "shortDescription": {"text": f"Generated rule {r}"},
                  "properties": {"tags": ["security", f"CWE-{rng.randint(20, 999)}"],
                                 "security-severity": str(round(rng.uniform(0, 10), 1))}} for r in rules]
    sarif = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "semgrep", "rules": rule_defs}},
                                           "results": results}]}
    with open(path, "w") as f:
        json.dump(sarif, f)
    # A second tool reporting 10 % of the same findings (same rule, file and snippet).
    dup = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "semgrep", "rules": rule_defs}},
                                         "results": results[: count // 10]}]}
    dup_path = path.replace(".sarif", "-dup.sarif")
    with open(dup_path, "w") as f:
        json.dump(dup, f)
    return dup_path


def timed(cmd, cwd):
    """Runs cmd under GNU time; returns (seconds, peak RSS MB, exit code, output)."""
    started = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    return seconds, int(rss.group(1)) / 1024 if rss else float("nan"), out.returncode, out.stdout + out.stderr


def bench_findings(count):
    work = tempfile.mkdtemp(prefix="devsecops-bench-")
    try:
        sarif = os.path.join(work, "generated.sarif")
        dup = generate_sarif(sarif, count)
        size_mb = (os.path.getsize(sarif) + os.path.getsize(dup)) / 1e6
        steps = [
            ("ingest", [BIN, "ingest", "--tool", "sarif", sarif, dup]),
            ("gate + 6 reports", [BIN, "gate"]),
        ]
        print(f"\n{count:,} findings (+{count // 10:,} duplicates from a second report, {size_mb:.0f} MB of SARIF)\n")
        print(f"{'step':<22} {'seconds':>8} {'peak RSS MB':>12}")
        total, peak = 0.0, 0.0
        for name, cmd in steps:
            seconds, rss, code, output = timed(cmd, work)
            if code not in (0, 1):
                sys.exit(f"{name} failed:\n{output[-2000:]}")
            total, peak = total + seconds, max(peak, rss)
            print(f"{name:<22} {seconds:>8.2f} {rss:>12.1f}")
        with open(os.path.join(work, "reports", "devsecops.json")) as f:
            unique = len(json.load(f)["findings"])
        print(f"{'total':<22} {total:>8.2f} {peak:>12.1f}   ({unique:,} unique findings after deduplication)")
        print(f"\ntarget: under 3 s and 300 MB -> {'met' if total < 3 and peak < 300 else 'MISSED'}")
        return total, peak
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_scan():
    print("\ndevsecops scan of this repository\n")
    # Cold: the workspace's own crates rebuilt for clippy; then warm runs.
    results = {}
    cores = str(os.cpu_count() or 1)
    for label, parallel in (("cold, parallel", cores), ("warm, parallel", cores), ("warm, one at a time", "1")):
        if label.startswith("cold"):
            subprocess.run(["cargo", "clean", "-p", "devsecops-app", "-p", "devsecops"], cwd=ROOT, capture_output=True)
        seconds, rss, code, output = timed([BIN, "scan", "--parallel", parallel], ROOT)
        if code not in (0, 1):
            sys.exit(f"scan failed:\n{output[-2000:]}")
        results[label] = seconds
        print(f"{label:<22} {seconds:>7.1f} s")
    speedup = results["warm, one at a time"] / results["warm, parallel"]
    print(f"\nparallel speedup (warm): {speedup:.2f}x on {os.cpu_count()} cores")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--skip-scan", action="store_true")
    args = parser.parse_args()
    bench_findings(args.findings)
    if not args.skip_scan:
        bench_scan()


if __name__ == "__main__":
    main()
