"""Fixtures of the `devsecops audit` and VEX tests: binaries built here with `cargo auditable build`
from the crates in pipeline/tests/fixtures/auditable (cached under target/ by the hash of their
sources and the toolchain, so the test command builds them once), and real Nix closures of them
built with Debian's nix-bin."""

import hashlib
import json
import os
import shutil
import struct
import subprocess
import zlib

import sys

import pytest

# The official-schema validators of the report tests, shared rather than copied.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.environ.get("DEVSECOPS_BIN", os.path.join(ROOT, "target", "debug", "devsecops"))
FIXTURES = os.path.join(ROOT, "pipeline", "tests", "fixtures")
CRATES = os.path.join(FIXTURES, "auditable")
SCHEMAS = os.environ.get("DEVSECOPS_SCHEMAS", os.path.join(os.path.dirname(ROOT), "shared", "schemas"))
ADVISORY_DB = os.environ.get("DEVSECOPS_ADVISORY_DB", os.path.join(os.path.dirname(ROOT), "shared", "advisory-db"))


def run(args, cwd=None, check=True, **kwargs):
    out = subprocess.run([BIN, *args], cwd=cwd, capture_output=True, text=True, **kwargs)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def fixture_key():
    digest = hashlib.sha256()
    for folder, _, files in sorted(os.walk(CRATES)):
        for name in sorted(files):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, CRATES).encode() + b"\0")
            with open(path, "rb") as f:
                digest.update(f.read() + b"\0")
    digest.update(subprocess.run(["rustc", "-vV"], capture_output=True, check=True).stdout)
    # cargo-auditable prints no version of its own: the binary itself identifies it.
    with open(shutil.which("cargo-auditable"), "rb") as f:
        digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()[:16]


def cargo_build(source, target, auditable):
    command = ["cargo", "auditable", "build"] if auditable else ["cargo", "build"]
    env = dict(os.environ, CARGO_TARGET_DIR=target, CARGO_TERM_QUIET="true")
    env.pop("RUSTFLAGS", None)
    subprocess.run([*command, "--release", "--manifest-path", os.path.join(source, "Cargo.toml")],
                   env=env, check=True, capture_output=True, timeout=600)


@pytest.fixture(scope="session")
def bins():
    return build_bins()


def build_bins():
    """vuln-tool and patched-tool (cargo auditable), plain-tool (the patched crate built without
    it), c-tool (a C program): built once per content of the fixture crates and toolchain; the
    directory holding them. bench/audit.py uses them too."""
    assert shutil.which("cargo-auditable"), "cargo-auditable is missing: scripts/test.sh installs it"
    cache = os.path.join(ROOT, "target", "auditable-fixtures", fixture_key())
    out = os.path.join(cache, "bin")
    if not os.path.exists(os.path.join(out, ".done")):
        shutil.rmtree(cache, ignore_errors=True)
        work = os.path.join(cache, "src")
        shutil.copytree(CRATES, work)
        os.makedirs(out)
        for crate, name, auditable in [("vulnerable", "vuln-tool", True), ("patched", "patched-tool", True),
                                       ("patched", "plain-tool", False)]:
            target = os.path.join(cache, "target-" + name)
            cargo_build(os.path.join(work, crate), target, auditable)
            built = "vuln-tool" if crate == "vulnerable" else "patched-tool"
            shutil.copy(os.path.join(target, "release", built), os.path.join(out, name))
        shutil.copy("/bin/true", os.path.join(out, "c-tool"))
        open(os.path.join(out, ".done"), "w").close()
    return out


def elf_section(data, name):
    """(offset of its section header, file offset, size) of an ELF64 little-endian section."""
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "an x86-64/aarch64 ELF64 LE binary"
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i):
        return struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)

    strings = header(shstrndx)[4]
    for i in range(shnum):
        h = header(i)
        start = strings + h[0]
        if data[start:data.index(b"\0", start)] == name:
            return shoff + i * shentsize, h[4], h[5]
    raise AssertionError(f"no section {name!r}")


def with_section(source, target, content):
    """A copy of `source` whose .dep-v0 section holds `content` (at most the original size)."""
    data = bytearray(open(source, "rb").read())
    header, offset, size = elf_section(bytes(data), b".dep-v0")
    assert len(content) <= size
    data[offset:offset + size] = content + b"\0" * (size - len(content))
    struct.pack_into("<Q", data, header + 0x20, len(content))
    with open(target, "wb") as f:
        f.write(data)
    os.chmod(target, 0o755)
    return target


@pytest.fixture(scope="session")
def corrupt_bins(bins, tmp_path_factory):
    """vuln-tool with its section overwritten: bytes that are not zlib, and zlib of text that is
    not the dependency list's JSON."""
    out = tmp_path_factory.mktemp("corrupt")
    source = os.path.join(bins, "vuln-tool")
    _, _, size = elf_section(open(source, "rb").read(), b".dep-v0")
    garbage = with_section(source, str(out / "corrupt-tool"), b"\xff" * size)
    not_json = with_section(source, str(out / "not-json-tool"), zlib.compress(b'{"packages": [{"name": 1}]}'))
    return {"garbage": garbage, "not-json": not_json}


def nix_build(expression, *args):
    assert shutil.which("nix-build"), "nix-build is missing: scripts/test.sh installs nix-bin"
    # Root builds without the nixbld build users (Debian's nix-bin creates none) and without a
    # binary cache (offline), as the SBOM tests do.
    out = subprocess.run(["nix-build", "--option", "sandbox", "false", "--option", "build-users-group", "",
                          "--option", "substituters", "", "--no-out-link", *args, expression],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def path_info(store_path):
    out = subprocess.run(["nix", "--extra-experimental-features", "nix-command", "path-info", "--json", "--recursive",
                          store_path], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    # Array (Nix <= 2.18) or object keyed by path.
    return {i["path"]: i for i in info} if isinstance(info, list) else {p: dict(i, path=p) for p, i in info.items()}


@pytest.fixture(scope="session")
def closure(bins):
    return build_closure(bins)


def build_closure(bins):
    """The store path of the appliance closure, and every store path in it by name."""
    root = nix_build(os.path.join(FIXTURES, "audit-closure.nix"), "--arg", "bins", bins)
    infos = path_info(root)
    by_name = {p.split("-", 1)[1]: info for p, info in infos.items()}
    return root, by_name


@pytest.fixture(scope="session")
def corrupt_closure(corrupt_bins):
    folder = os.path.dirname(corrupt_bins["garbage"])
    return nix_build(os.path.join(FIXTURES, "audit-closure.nix"), "--arg", "bins", folder, "--arg", "corrupt", "true")
