#!/usr/bin/env python3
"""Applies the Dockerfile's final (runtime) stage to files prepared on the host, with `docker import`:
COPY --from=<stage> /out/<file> <dest> takes dist/<file>; USER, ENV, LABEL, EXPOSE, VOLUME, WORKDIR
and ENTRYPOINT become --change options. Used where BuildKit is missing, so the legacy builder would
try to pull the build stage's base image.

    dockerfile_import.py DOCKERFILE DIST_DIR TAG [ARG=VALUE...]
"""

import io
import os
import re
import shlex
import subprocess
import sys
import tarfile


def final_stage(lines):
    joined, buf = [], ""
    for line in lines:
        stripped = line.rstrip("\n")
        if stripped.lstrip().startswith("#") and not buf:
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        if buf.strip():
            joined.append(buf.strip())
        buf = ""
    starts = [i for i, l in enumerate(joined) if l.upper().startswith("FROM ")]
    return joined[starts[-1]:]


def main():
    dockerfile, dist, tag, *args = sys.argv[1:]
    values = dict(a.split("=", 1) for a in args)
    stage = final_stage(open(dockerfile).readlines())
    changes, files = [], []
    for instruction in stage[1:]:
        keyword, _, rest = instruction.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            values.setdefault(name, default)
            continue
        rest = re.sub(r"\$\{(\w+)\}", lambda m: values.get(m.group(1), ""), rest)
        if keyword == "COPY":
            words = shlex.split(rest)
            owner = next((w.split("=", 1)[1] for w in words if w.startswith("--chown=")), None)
            src, dest = [w for w in words if not w.startswith("--")]
            files.append((os.path.join(dist, os.path.basename(src.rstrip("/"))), dest, owner))
        elif keyword in ("USER", "ENV", "LABEL", "EXPOSE", "VOLUME", "WORKDIR", "ENTRYPOINT", "CMD"):
            changes += ["--change", f"{keyword} {rest}"]
        else:
            sys.exit(f"{dockerfile}: {keyword} is not supported by this importer")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for src, dest, owner in files:
            info = tar.gettarinfo(src, arcname=dest.lstrip("/"))
            info.uid = info.gid = int(owner.split(":")[0]) if owner else 0
            info.uname = info.gname = ""
            if info.isdir():
                tar.addfile(info)
            else:
                with open(src, "rb") as f:
                    tar.addfile(info, f)
    out = subprocess.run(["docker", "import", *changes, "-", tag], input=buffer.getvalue(), capture_output=True)
    if out.returncode != 0:
        sys.exit(out.stderr.decode())


if __name__ == "__main__":
    main()
