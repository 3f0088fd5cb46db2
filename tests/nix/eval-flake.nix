# The flake's outputs (flake.nix and nix/*.nix as they are), evaluated with nixpkgs' lib and
# stand-ins for nixpkgs' packages and crane's builders. Nothing is built: each builder records the
# arguments it is given, so tests/nix/test_flake.py can check what every derivation would be built
# with (its inputs and their order, the static link, crane's names). A package is a derivation
# with its outputs, as nixpkgs exposes them (glibc.static is glibc's `static` output). An attribute
# the flake starts to use that is missing here fails the evaluation: add it to `packageNames`.
#   nix-instantiate --eval --strict --json --argstr nixpkgsLib /path/to/nixpkgs-lib tests/nix/eval-flake.nix
{ nixpkgsLib }:

let
  lib = import (/. + nixpkgsLib + "/lib");
  storePath = name: "/nix/store/00000000000000000000000000000000-${name}";

  package = name: outputs:
    let
      output = o: {
        type = "derivation";
        inherit name;
        outputName = o;
        outPath = storePath (if o == "out" then name else "${name}-${o}");
      } // lib.genAttrs outputs output;
    in
    output (lib.head outputs);

  # A derivation a builder would make, with the builder's name and arguments.
  recorded = builder: name: args: package name [ "out" ] // { recordedBuilder = builder; recordedArgs = args; };

  packageNames = [
    "cargo"
    "rustc"
    "clippy"
    "rustfmt"
    "cargo-nextest"
    "cargo-deny"
    "cargo-audit"
    "cargo-auditable"
    "cargo-fuzz"
    "postgresql"
    "wrk"
    "curl"
    "python3"
    "schemathesis"
    "chromium"
    "gitleaks"
    "semgrep"
    "checkov"
    "hadolint"
    "shellcheck"
    "trivy"
    "zizmor"
    "kubernetes-helm"
    "kubectl"
    "kustomize"
    "prometheus"
    "prometheus-alertmanager"
    "grafana-alloy"
    "grafana-loki"
    "nixpkgs-fmt"
    "deadnix"
    "groovy"
    "git"
    "nix"
    "jq"
    "yq-go"
    "coreutils"
    "systemd"
    "shfmt"
    "openssh"
    "util-linux"
  ];

  pkgsFor = system: lib.genAttrs packageNames (n: package n [ "out" ]) // {
    inherit lib;
    stdenv.hostPlatform = lib.systems.elaborate system;
    glibc = package "glibc" [ "out" "bin" "dev" "static" "getent" ];
    python3Packages = lib.genAttrs [ "pytest" "pyyaml" "jsonschema" ] (n: package "python3-${n}" [ "out" ]);
    runCommand = name: env: _script: recorded "runCommand" name env;
    writeText = name: _text: package name [ "out" ];
    writeShellApplication = args: recorded "writeShellApplication" args.name args;
    mkShell = args: recorded "mkShell" "shell" args;
    stdenvNoCC.mkDerivation = args: recorded "stdenvNoCC.mkDerivation" args.name args;
    # A test's evaluated nodes come through as nixos/lib/testing/nodes.nix passes them
    # (passthru.nodes): here each node's system is a package named after it.
    testers.runNixOSTest = test: recorded "runNixOSTest" test.name { } // {
      nodes = lib.mapAttrs (node: _: { system.build.toplevel = package "nixos-system-${node}" [ "out" ]; }) test.nodes;
    };
    dockerTools = {
      caCertificates = package "docker-ca-certificates" [ "out" ];
      fakeNss = package "fake-nss" [ "out" ] // { override = args: recorded "fakeNss" "fake-nss" args; };
      streamLayeredImage = args: recorded "streamLayeredImage" args.name args;
      buildLayeredImage = args: recorded "buildLayeredImage" args.name args;
    };
  };

  crane.mkLib = _pkgs:
    let builder = name: args: recorded "crane.${name}" (args.pname or "crane-placeholder") args; in
    {
      fileset.commonCargoSources = root: lib.fileset.unions [ (root + "/Cargo.toml") (root + "/Cargo.lock") ];
    } // lib.genAttrs [ "buildDepsOnly" "buildPackage" "cargoClippy" "cargoFmt" "cargoNextest" "cargoAudit" "cargoDeny" ] builder;

  systems = [ "x86_64-linux" "aarch64-linux" ];
  nixpkgs = {
    lib = lib // { nixosSystem = _: { config.system.build.images.qemu = package "nixos-image-qemu" [ "out" ]; }; };
    legacyPackages = lib.genAttrs systems pkgsFor;
  };

  flake = import ../../flake.nix;
  outputs = flake.outputs {
    self = outputs // { outPath = storePath "source"; };
    inherit nixpkgs crane;
    advisory-db = storePath "advisory-db";
  };

  # JSON for the tests: derivations as their name and output, recorded ones with their arguments.
  # Sources are left out (forcing them would copy the repository into the store).
  describe = value:
    if lib.isDerivation value then
      { package = value.name; inherit (value) outputName; }
      // lib.optionalAttrs (value ? recordedBuilder) {
        builder = value.recordedBuilder;
        args = describe (removeAttrs value.recordedArgs [ "src" "chartSrc" ]);
      }
    else if lib.isAttrs value then lib.mapAttrs (_: describe) value
    else if lib.isList value then map describe value
    else if lib.isFunction value then "<function>"
    else if lib.isPath value then toString value
    else value;
in
{
  inherit systems;
  rustTargets = lib.genAttrs systems (system: { inherit ((lib.systems.elaborate system).rust) rustcTarget cargoEnvVarTarget; });
  packages = lib.mapAttrs (_: describe) outputs.packages;
  checks = lib.mapAttrs (_: describe) outputs.checks;
  devShells = lib.mapAttrs (_: describe) outputs.devShells;
  apps = lib.mapAttrs (_: describe) outputs.apps;
}
