"""What the flake's derivations would be built with (tests/nix/eval-flake.nix: the real flake.nix and
nix/*.nix, nixpkgs' lib, stand-ins that record each builder's arguments): no static library output
ahead of its package's own in any inputs list, the static binary's link flags for the target only
and its own dependency build, and a name and version for every crane derivation."""


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
