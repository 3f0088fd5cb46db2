# `nix flake check`: the same gates as scripts/test.sh where a Nix sandbox can run them, plus the
# NixOS VM tests (they need KVM).
{ pkgs, project, src, advisory-db, nixosModules }:

let
  inherit (project) craneLib common cargoArtifacts;
  # The checks that take no `common` still name themselves: without pname and version crane reads
  # the workspace's Cargo.toml, finds no package name and warns on every evaluation.
  named = { inherit (common) pname version; };
  vmAppliance = import ../vm-tests/appliance.nix { inherit pkgs project nixosModules advisory-db; };
in
{
  inherit (project) devsecops-app devsecops image chart;

  clippy = craneLib.cargoClippy (common // {
    inherit cargoArtifacts;
    cargoClippyExtraArgs = "--all-targets -- --deny warnings";
  });

  fmt = craneLib.cargoFmt (named // { src = project.rustSrc; });

  # Every integration test runs on SQLite and on a real PostgreSQL, started here on loopback with
  # a throwaway cluster (the test role may create a database per test). The tests also run git
  # (policy history, approvals), ssh-keygen (approvals are signed as approvers sign them) and
  # util-linux's script (a terminal for the progress display): none is in the stdenv.
  # The storage tests that mount a tmpfs or a loop ext4 need root, which the sandbox's build user
  # is not (app/tests/api/storage.rs fails them, never skips): they run in scripts/test.sh only.
  tests = craneLib.cargoNextest (common // {
    inherit cargoArtifacts;
    nativeCheckInputs = [ pkgs.postgresql pkgs.git pkgs.openssh pkgs.util-linux ];
    cargoNextestExtraArgs = "--no-fail-fast -E 'not (binary(api) & test(/^storage::(sqlite_|readiness_checks_under_a_held_lock)/))'";
    preCheck = ''
      export PGDATA="$TMPDIR/pgdata" PGHOST="$TMPDIR" PGPORT=55432
      initdb --auth=trust --username=postgres >/dev/null
      pg_ctl start --wait --log="$TMPDIR/postgres.log" -o "-c listen_addresses=127.0.0.1 -c unix_socket_directories=$TMPDIR"
      psql -U postgres -d postgres -c "CREATE ROLE devsecops_test LOGIN CREATEDB PASSWORD 'devsecops_test'"
      export TEST_POSTGRES_URL="postgres://devsecops_test:devsecops_test@127.0.0.1:$PGPORT/postgres"
    '';
    postCheck = ''
      pg_ctl stop --mode=fast
    '';
  });

  # Both advisory checks read the pinned advisory-db input, offline. Without a crates.io index in
  # the sandbox cargo-deny cannot see yanked crates (it only warns): `nix run .#check-yanked`
  # enforces deny.toml's `yanked = "deny"` where the index is reachable (docs/nix.md).
  audit = craneLib.cargoAudit (named // { src = project.rustSrc; inherit advisory-db; });
  deny = craneLib.cargoDeny (named // {
    src = project.rustSrc;
    cargoDenyChecks = "advisories bans licenses sources";
    cargoDenyExtraArgs = "--offline";
    nativeBuildInputs = [ pkgs.git ];
    # deny.toml reads the database from target/advisory-dbs/<name derived from its URL>, as a git
    # checkout: the same layout scripts/lib.sh prepares from the offline snapshot.
    preBuild = ''
      db=target/advisory-dbs/advisory-db-3157b0e258782691
      mkdir -p target/advisory-dbs && cp -r ${advisory-db} "$db" && chmod -R u+w "$db"
      git -C "$db" init -q -b main && git -C "$db" add -A
      git -C "$db" -c user.name=snapshot -c user.email=snapshot@localhost commit -q -m snapshot
    '';
  });

  # The project's own gate on its source, with the scanners that need no network.
  devsecops-gate = pkgs.runCommand "devsecops-gate"
    {
      nativeBuildInputs = [ project.devsecops pkgs.gitleaks pkgs.semgrep pkgs.checkov pkgs.hadolint pkgs.shellcheck pkgs.trivy pkgs.git ];
      gateConfig = ./devsecops-gate.toml;
    } ''
    cp -r ${src} source && chmod -R u+w source && cd source
    export HOME=$TMPDIR
    # Paths in a config are relative to its directory: it goes into the tree it scans.
    cp "$gateConfig" devsecops-nix.toml
    devsecops --config devsecops-nix.toml scan
    mkdir -p $out && cp -r reports $out/
  '';

  # Nix lint: formatting and dead code in every .nix file.
  nix-lint = pkgs.runCommand "nix-lint" { nativeBuildInputs = [ pkgs.nixpkgs-fmt pkgs.deadnix ]; } ''
    cd ${src}
    # Fixtures are inputs of the parser tests, kept byte for byte.
    files=$(find . -name '*.nix' -not -path './pipeline/tests/fixtures/*')
    nixpkgs-fmt --check $files
    deadnix --fail $files
    touch $out
  '';

  vm-service = import ../vm-tests/service.nix { inherit pkgs project nixosModules; };
  vm-appliance = vmAppliance;

  # The appliance's system closure (the VM test's node, which nixos/lib/testing/nodes.nix passes
  # through) audited in the sandbox: the crates cargo auditable embedded in every Rust binary,
  # against the pinned advisory database, then the gate's policy with the appliance's accepted
  # findings (.devsecops/appliance-suppressions.toml). The path info comes as
  # closureInfo gets it (nixpkgs pkgs/build-support/closure-info.nix): exportReferencesGraph
  # under structured attributes. tests/nix checks this script; pipeline/tests/audit runs it.
  appliance-closure-audit = pkgs.stdenvNoCC.mkDerivation {
    name = "appliance-closure-audit";
    __structuredAttrs = true;
    exportReferencesGraph.closure = [ vmAppliance.nodes.appliance.system.build.toplevel ];
    nativeBuildInputs = [ project.devsecops pkgs.jq ];
    gateConfig = ./devsecops-gate.toml;
    suppressions = ../.devsecops/appliance-suppressions.toml;
    buildCommand = ''
      out=''${outputs[out]}
      export HOME=$TMPDIR
      mkdir -p audit/.devsecops && cd audit
      jq .closure "$NIX_ATTRS_JSON_FILE" > closure.json
      cp "$gateConfig" devsecops.toml
      cp "$suppressions" .devsecops/suppressions.toml
      devsecops audit --nix closure.json --db ${advisory-db}
      devsecops gate --format sarif,junit,json,markdown
      mkdir -p "$out" && cp -r reports closure.json "$out"/
    '';
  };
}
