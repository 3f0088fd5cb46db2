"""What the flake's derivations would be built with (tests/nix/eval-flake.nix: the real flake.nix and
nix/*.nix, nixpkgs' lib, stand-ins that record each builder's arguments): no static library output
ahead of its package's own in any inputs list, the static binary's link flags for the target only
and its own dependency build, and a name and version for every crane derivation."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def derivations(node, where=()):
    """Every derivation a builder would make, with the output path that leads to it."""
    if isinstance(node, dict):
        if "builder" in node:
            yield where, node
        for key, value in node.items():
            yield from derivations(value, where + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from derivations(value, where + (str(i),))


def all_derivations(flake):
    for kind in ("packages", "checks", "devShells"):
        yield from derivations(flake[kind], (kind,))


def input_lists(args):
    """The lists whose packages reach the build environment (mkShell's `packages` join
    nativeBuildInputs)."""
    for key, value in args.items():
        if isinstance(value, list) and (key.endswith("Inputs") or key in ("packages", "inputsFrom")):
            yield key, value


def static_outputs_first(drv):
    """Static library outputs listed before their package's own output: the bintools wrapper puts
    each input's lib/ on the linker path in list order, ahead of the C library's, so every link of
    the derivation, dynamic ones included, would find libc.a first (nixpkgs issue #59267)."""
    found = []
    for key, inputs in input_lists(drv.get("args", {})):
        seen = set()
        for item in inputs:
            if not isinstance(item, dict) or "package" not in item:
                continue
            if item["outputName"] == "static" and item["package"] not in seen:
                found.append(f"{key}: {item['package']}.static before {item['package']}")
            elif item["outputName"] != "static":
                seen.add(item["package"])
    return found


def test_every_output_is_described(flake):
    for system in flake["systems"]:
        assert {"devsecops-app", "devsecops-app-static", "devsecops", "image", "image-tarball", "chart"} <= set(flake["packages"][system])
        assert {"clippy", "fmt", "tests", "audit", "deny", "devsecops-gate", "nix-lint"} <= set(flake["checks"][system])
    assert len(list(all_derivations(flake))) > 20


def test_no_derivation_puts_a_static_library_output_first(flake):
    problems = {"/".join(where): found for where, drv in all_derivations(flake) if (found := static_outputs_first(drv))}
    assert problems == {}


def test_the_static_first_check_fails_on_the_faults_it_exists_for():
    glibc, static = {"package": "glibc", "outputName": "out"}, {"package": "glibc", "outputName": "static"}
    assert static_outputs_first({"args": {"buildInputs": [static]}})
    assert static_outputs_first({"args": {"buildInputs": [static, glibc]}})
    assert static_outputs_first({"args": {"packages": [static]}})
    assert static_outputs_first({"args": {"buildInputs": [glibc, static]}}) == []


def test_the_static_binary_links_glibc_statically_for_its_target_only(flake):
    for system in flake["systems"]:
        target = flake["rustTargets"][system]
        drv = flake["packages"][system]["devsecops-app-static"]
        args = drv["args"]
        assert drv["builder"] == "crane.buildPackage"
        assert args["CARGO_BUILD_TARGET"] == target["rustcTarget"]
        flags = args[f"CARGO_TARGET_{target['cargoEnvVarTarget']}_RUSTFLAGS"].split()
        assert "target-feature=+crt-static" in flags
        assert any(f.startswith("native=") and f.endswith("-glibc-static/lib") for f in flags), flags
        # Flags cargo would also give build scripts and proc macros, or that would replace these.
        assert not {"RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS"} & set(args)
        assert not [item for _, inputs in input_lists(args) for item in inputs if item.get("package") == "glibc"]

        deps = args["cargoArtifacts"]
        assert deps["builder"] == "crane.buildDepsOnly", "the static binary has its own dependency build"
        same = ("CARGO_BUILD_TARGET", f"CARGO_TARGET_{target['cargoEnvVarTarget']}_RUSTFLAGS",
                "cargoExtraArgs", "cargoBuildCommand", "doCheck")
        assert {k: deps["args"].get(k) for k in same} == {k: args.get(k) for k in same}
        shared = flake["packages"][system]["devsecops-app"]["args"]["cargoArtifacts"]
        assert shared["args"] != deps["args"]


def test_every_crane_derivation_names_itself(flake):
    """Without pname and version crane reads them from the workspace's Cargo.toml, which names no
    package, and warns on every evaluation."""
    unnamed = ["/".join(where) for where, drv in all_derivations(flake)
               if drv["builder"].startswith("crane.") and not (drv["args"].get("pname") and drv["args"].get("version"))]
    assert unnamed == []


def test_the_yanked_crates_check_is_an_app(flake):
    for system in flake["systems"]:
        app = flake["apps"][system]["check-yanked"]
        assert app["type"] == "app" and app["program"].endswith("/bin/check-yanked")


def test_the_appliance_closure_is_audited_in_the_sandbox(flake):
    """checks.appliance-closure-audit: the system of the appliance VM test's node, its path info
    from exportReferencesGraph under structured attributes (as closureInfo gets it), every Rust
    binary audited against the pinned advisory database, then the gate; its script passes
    shellcheck as the builder's bash runs it. pipeline/tests/audit runs the script on a real
    closure."""
    import subprocess
    for system in flake["systems"]:
        drv = flake["checks"][system]["appliance-closure-audit"]
        args = drv["args"]
        assert drv["builder"] == "stdenvNoCC.mkDerivation" and args["__structuredAttrs"] is True
        assert args["exportReferencesGraph"] == {"closure": [{"package": "nixos-system-appliance", "outputName": "out"}]}
        assert {i["package"] for i in args["nativeBuildInputs"]} == {"devsecops", "jq"}
        script = args["buildCommand"]
        assert "devsecops audit --nix closure.json --db /nix/store/00000000000000000000000000000000-advisory-db\n" in script
        assert script.index("devsecops audit") < script.index("devsecops gate")
        # Structured attributes define these for the builder (.attrs.sh, NIX_ATTRS_JSON_FILE).
        assert args["suppressions"].endswith("/.devsecops/appliance-suppressions.toml")
        declared = ("declare -A outputs=([out]=/nix/store/x)\nNIX_ATTRS_JSON_FILE=/build/.attrs.json\ngateConfig=/nix/store/x\n"
                    "suppressions=/nix/store/y\nTMPDIR=/build\n")
        check = subprocess.run(["shellcheck", "-s", "bash", "-"], input="#!/usr/bin/env bash\nset -euo pipefail\n" + declared + script,
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout


def test_the_static_binary_is_checked_for_a_program_interpreter_and_shared_libraries(flake, tmp_path):
    """The image has no loader: devsecops-app-static's install check fails a binary that names an
    interpreter or needs a library. Run here on a static-pie binary (Debian's ldconfig, as Rust's
    +crt-static links on glibc) and a dynamic one, as the stdenv runs it (set -eu, pipefail,
    READELF from the bintools)."""
    import shutil
    import subprocess
    for system in flake["systems"]:
        args = flake["packages"][system]["devsecops-app-static"]["args"]
        assert args["doInstallCheck"] is True
        phase = args["installCheckPhase"]
        assert "doInstallCheck" not in flake["packages"][system]["devsecops-app-static"]["args"]["cargoArtifacts"]["args"]
    check = subprocess.run(["shellcheck", "-s", "bash", "-"], input="#!/usr/bin/env bash\nset -euo pipefail\nout=/nix/store/x\n"
                           "READELF=readelf\nrunHook() { :; }\n" + phase, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout

    def install_check(binary):
        out = tmp_path / binary.replace("/", "-")
        (out / "bin").mkdir(parents=True)
        shutil.copy(binary, out / "bin" / "devsecops-app")
        script = "set -eu -o pipefail\nrunHook() { :; }\n" + phase
        return subprocess.run(["bash", "-c", script], env={"out": str(out), "READELF": "readelf", "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True)

    static = install_check("/sbin/ldconfig")
    assert static.returncode == 0, static.stderr
    dynamic = install_check("/bin/ls")
    assert dynamic.returncode != 0 and "names a program interpreter: it is not static" in dynamic.stderr, dynamic


# The programs the workspace's tests start (Command::new("...") in app/ and pipeline/) and where the
# `tests` check gets each: a package in its nativeCheckInputs, the stdenv, or nowhere because the
# tests that run it do not run in the sandbox.
TEST_PROGRAMS = {
    "git": "git",                 # policy history, approvals
    "ssh-keygen": "openssh",      # approvals are signed as approvers sign them
    "script": "util-linux",       # a terminal for the progress display
    "kill": "stdenv",             # coreutils
    "cargo": "stdenv",            # crane's toolchain (the SBOM of a Cargo project)
    "nix": "unused",              # only for a store path; the tests give path info as JSON
    "chattr": "root", "umount": "root", "findmnt": "root",  # app/tests/api/storage.rs, root only
    "/proc/self/exe": "self",     # the binary under test running its own image (cli.rs, token scoring)
}


def rust_sources(*roots):
    for root in roots:
        for directory, _, files in os.walk(os.path.join(ROOT, root)):
            for name in files:
                if name.endswith(".rs"):
                    with open(os.path.join(directory, name)) as f:
                        yield f.read()


def test_the_tests_check_has_every_program_the_tests_start(flake):
    import re
    started = {p for text in rust_sources("app", "pipeline") for p in re.findall(r'Command::new\("([^"]+)"\)', text)}
    assert started - set(TEST_PROGRAMS) == set(), "a test starts a program the tests check may not have: classify it"
    for system in flake["systems"]:
        args = flake["checks"][system]["tests"]["args"]
        inputs = {i["package"] for i in args["nativeCheckInputs"]}
        assert {pkg for p, pkg in TEST_PROGRAMS.items()
                if p in started and pkg not in ("stdenv", "unused", "root", "self")} <= inputs
        assert "postgresql" in inputs


def test_the_tests_that_need_root_are_left_to_scripts_test_sh(flake):
    """The build user is not root: the storage tests that mount a filesystem would fail (they never
    skip). The nextest filterset must exclude exactly those."""
    import re
    with open(os.path.join(ROOT, "app", "tests", "api", "storage.rs")) as f:
        source = f.read()
    tests = re.findall(r"#\[[\w:]*test\]\s*(?:async\s+)?fn\s+(\w+)\(", source)
    starts = [m.start() for m in re.finditer(r"^(?:#\[|(?:async\s+)?fn\s)", source, re.M)] + [len(source)]
    bodies = {}
    for name in tests:
        at = re.search(rf"fn\s+{name}\(", source).start()
        bodies[name] = source[at:min(s for s in starts if s > at)]
    mounting = {name for name, body in bodies.items() if "::mount(" in body}
    assert mounting and mounting != set(tests), "the file still has tests that mount and tests that do not"
    for system in flake["systems"]:
        extra = flake["checks"][system]["tests"]["args"]["cargoNextestExtraArgs"]
        (filterset,) = re.findall(r"-E '([^']+)'", extra)
        match = re.fullmatch(r"not \(binary\((\w+)\) & test\(/(.+)/\)\)", filterset)
        assert match and match.group(1) == "api", filterset
        excluded = {name for name in tests if re.search(match.group(2), f"storage::{name}")}
        assert excluded == mounting, (excluded ^ mounting)
