#!/usr/bin/env python3
"""Benchmark of `devsecops audit --nix` (release build), offline against the RustSec snapshot:

1. the real fixture closure of pipeline/tests/audit (five store paths: a vulnerable and a patched
   binary built with cargo auditable, one built without it, a C program, the root);
2. a generated closure of 1,000 store paths added to the local store with nix-store --add, shaped
   like a system closure: most paths hold only text (scripts, manuals, data), 30 % hold ELF files
   copied from this machine's /usr/bin and /usr/lib (C and C++), 3 % a Rust binary with an embedded
   dependency list and 1 % one without.

Each is audited --runs times; wall time and peak RSS are printed (median and range), with what the
audit found. The generated store paths are deleted afterwards.

    bench/audit.sh                 (builds, then runs this)
    bench/audit.py --paths 1000 --runs 5
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "devsecops")
DB = os.environ.get("DEVSECOPS_ADVISORY_DB", os.path.join(os.path.dirname(ROOT), "shared", "advisory-db"))
NIX = ["nix", "--extra-experimental-features", "nix-command"]

sys.path.insert(0, os.path.join(ROOT, "pipeline", "tests", "audit"))
os.environ.setdefault("DEVSECOPS_BIN", BIN)
import conftest  # noqa: E402  (the fixture binaries and closure the tests build)


def system_elves(count, rng):
    """ELF files of this machine (executables and shared libraries), up to 8 MB each."""
    found = []
    for folder in ("/usr/bin", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"):
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) < 8 << 20:
                with open(path, "rb") as f:
                    if f.read(4) == b"\x7fELF":
                        found.append(path)
    rng.shuffle(found)
    return found[:count]


def generate_closure(count, bins, work, rng):
    """`count` store paths added to the local store; their path info (JSON of nix path-info)."""
    elves = system_elves(count, rng)
    folders = []
    for i in range(count):
        folder = os.path.join(work, f"pkg{i:04d}-{rng.randint(1, 9)}.{rng.randint(0, 20)}")
        os.makedirs(os.path.join(folder, "share", "doc"))
        for j in range(rng.randint(2, 8)):
            with open(os.path.join(folder, "share", "doc", f"file{j}.txt"), "w") as f:
                f.write(f"package {i} document {j}\n" * rng.randint(10, 400))
        roll = rng.random()
        if roll < 0.03:
            kind = rng.choice(["vuln-tool", "patched-tool"])
            shutil.copy(os.path.join(bins, kind), os.path.join(folder, kind))
        elif roll < 0.04:
            shutil.copy(os.path.join(bins, "plain-tool"), os.path.join(folder, "plain-tool"))
        elif roll < 0.34 and elves:
            for _ in range(rng.randint(1, 3)):
                if elves:
                    source = elves.pop()
                    shutil.copy(source, os.path.join(folder, os.path.basename(source)))
        folders.append(folder)
    added = subprocess.run(["nix-store", "--add", *folders], capture_output=True, text=True, check=True).stdout.split()
    info = subprocess.run([*NIX, "path-info", "--json", *added], capture_output=True, text=True, check=True).stdout
    return added, info


def audit(args):
    """Wall time, peak RSS (MB, from GNU time) and the report of one audit."""
    with tempfile.NamedTemporaryFile() as report, tempfile.NamedTemporaryFile(mode="r") as rss:
        started = time.monotonic()
        out = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name,
                              BIN, "audit", "--db", DB, "--output", report.name, *args], capture_output=True, text=True)
        elapsed = time.monotonic() - started
        assert out.returncode == 0, out.stderr
        return elapsed, int(rss.read().strip()) / 1024, json.load(open(report.name))


def measure(label, args, runs):
    times, peaks, report = [], [], None
    for _ in range(runs):
        elapsed, peak, report = audit(args)
        times.append(elapsed)
        peaks.append(peak)
    print(f"{label}: {report['store_paths']} store paths, {report['files']} files, {report['executables']} executables, "
          f"{len(report['binaries'])} Rust binaries audited ({sum(b['crates'] for b in report['binaries'])} crates), "
          f"{len(report['not_auditable'])} not auditable, {sum(len(m['binaries']) for m in report['findings'])} findings")
    print(f"  wall time median {statistics.median(times):.2f} s (range {min(times):.2f}-{max(times):.2f} s over {runs} runs),"
          f" peak RSS {max(peaks):.0f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261201)
    options = parser.parse_args()
    bins = conftest.build_bins()
    root, _ = conftest.build_closure(bins)
    measure("fixture closure", ["--nix", root], options.runs)
    rng = random.Random(options.seed)
    with tempfile.TemporaryDirectory() as work:
        added, info = generate_closure(options.paths, bins, work, rng)
        try:
            with open(os.path.join(work, "closure.json"), "w") as f:
                f.write(info)
            parsed = json.loads(info)
            infos = parsed.values() if isinstance(parsed, dict) else parsed
            total = sum(i["narSize"] for i in infos)
            print(f"generated closure: {len(added)} store paths, {total / 1e6:.0f} MB of NAR")
            measure("generated closure", ["--nix", os.path.join(work, "closure.json")], options.runs)
        finally:
            subprocess.run(["nix-store", "--delete", *added], capture_output=True)


if __name__ == "__main__":
    main()
