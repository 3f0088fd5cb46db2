# The project's packages, built with crane from the Cargo workspace (one dependency build shared by
# every package and check).
{ pkgs, crane, advisory-db, src }:

let
  inherit (pkgs) lib;
  craneLib = crane.mkLib pkgs;
  imageConfig = import ./image-config.nix;

  # Rust sources and what the tests read: the metrics document, the scanners' real outputs, the lint
  # and nextest settings. Nothing else invalidates the build.
  rustSrc = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      (craneLib.fileset.commonCargoSources ../.)
      ../docs/metrics.md
      ../pipeline/tests/fixtures
      ../deny.toml
      ../clippy.toml
      ../.config
    ];
  };

  common = {
    src = rustSrc;
    strictDeps = true;
    # Every member inherits the workspace's version.
    inherit ((lib.importTOML ../Cargo.toml).workspace.package) version;
    pname = "devsecops-platform";
    # The fuzz targets are a separate workspace (cargo fuzz, nightly): not part of these builds.
    cargoExtraArgs = "--locked --workspace --exclude devsecops-image-tests";
  };

  cargoArtifacts = craneLib.buildDepsOnly common;

  # Built with cargo auditable like the image's binary, so `devsecops audit --nix` (the appliance's
  # closure audit) can read their dependency lists instead of reporting them not auditable.
  member = name: craneLib.buildPackage (common // {
    inherit cargoArtifacts;
    pname = name;
    cargoExtraArgs = "--locked -p ${name}";
    nativeBuildInputs = [ pkgs.cargo-auditable ];
    cargoBuildCommand = "cargo auditable build --release";
    # The workspace's tests run once, in checks.tests (they need PostgreSQL).
    doCheck = false;
    meta.mainProgram = name;
  });

  devsecops-app = member "devsecops-app";
  devsecops = member "devsecops";

  # The image's binary: statically linked against glibc like the Dockerfile's, with its dependency
  # list embedded (cargo auditable) so `cargo audit bin` can check it without the sources.
  # The static glibc reaches the target's link only, through target-specific rustflags: with a
  # target set, cargo gives build scripts and proc macros none of them (cargo
  # build_context/target_info.rs, extra_args). In buildInputs its lib/ would come before glibc's own
  # for every link of the derivation (bintools-wrapper: setup-hook.sh adds the inputs' -L,
  # add-flags.sh glibc's after them), and a dynamic host link would take libc.a and crash
  # (nixpkgs issue #59267).
  rust = pkgs.stdenv.hostPlatform.rust;
  staticArgs = common // {
    pname = "devsecops-app-static";
    cargoExtraArgs = "--locked -p devsecops-app";
    CARGO_BUILD_TARGET = rust.rustcTarget;
    "CARGO_TARGET_${rust.cargoEnvVarTarget}_RUSTFLAGS" = "-C target-feature=+crt-static -C strip=symbols -L native=${pkgs.glibc.static}/lib";
    nativeBuildInputs = [ pkgs.cargo-auditable ];
    cargoBuildCommand = "cargo auditable build --release";
    doCheck = false;
  };

  devsecops-app-static = craneLib.buildPackage (staticArgs // {
    # Its own dependency build: the shared one is for another target and other flags, so cargo
    # would compile every dependency again inside this derivation.
    cargoArtifacts = craneLib.buildDepsOnly staticArgs;
    meta.mainProgram = "devsecops-app";
    # The image has no dynamic loader and no shared library: a binary that names a program
    # interpreter or needs a library would not start there. Checked on the installed binary with
    # the stdenv's readelf (bintools-wrapper exports READELF); tests/nix runs this phase on a
    # static and a dynamic binary.
    doInstallCheck = true;
    installCheckPhase = ''
      runHook preInstallCheck
      bin=$out/bin/devsecops-app
      headers=$($READELF --program-headers --wide "$bin")
      dynamic=$($READELF --dynamic --wide "$bin")
      case $headers in
        *INTERP*) echo "$bin names a program interpreter: it is not static" >&2; exit 1 ;;
      esac
      case $dynamic in
        *"(NEEDED)"*) echo "$bin needs shared libraries: it is not static" >&2; exit 1 ;;
      esac
      echo "$bin: no program interpreter, no shared library"
      runHook postInstallCheck
    '';
  });

  # The distroless image: the static binary, CA certificates, a passwd naming uid 10001, an empty
  # /data for SQLite, no shell and nothing else; labels, user, environment and entrypoint as the
  # Dockerfile's (tests/nix checks that the two agree through image-config.nix).
  mkImage = builder: name: builder {
    inherit name;
    tag = common.version;
    contents = [
      pkgs.dockerTools.caCertificates
      (pkgs.dockerTools.fakeNss.override {
        extraPasswdLines = [ "app:x:${toString imageConfig.uid}:${toString imageConfig.gid}:devsecops-app:/nonexistent:/sbin/nologin" ];
        extraGroupLines = [ "app:x:${toString imageConfig.gid}:" ];
      })
    ];
    extraCommands = ''
      mkdir -p usr/local/bin data
      ln -s ${devsecops-app-static}/bin/devsecops-app usr/local/bin/devsecops-app
    '';
    fakeRootCommands = ''
      chown ${toString imageConfig.uid}:${toString imageConfig.gid} data
    '';
    config = {
      Entrypoint = imageConfig.entrypoint;
      User = "${toString imageConfig.uid}:${toString imageConfig.gid}";
      WorkingDir = "/";
      Env = lib.mapAttrsToList (k: v: "${k}=${v}") imageConfig.env;
      ExposedPorts."${toString imageConfig.port}/tcp" = { };
      Volumes."/data" = { };
      Labels = imageConfig.labels // {
        "org.opencontainers.image.version" = common.version;
        "org.opencontainers.image.revision" = src.rev or "dirty";
      };
    };
  };

  # `nix build .#image && ./result | docker load`
  image = mkImage pkgs.dockerTools.streamLayeredImage "devsecops-app";

  # The same image as a docker-archive tarball, named for the appliance's local registry: k3s
  # imports it before it starts.
  image-tarball = mkImage pkgs.dockerTools.buildLayeredImage "127.0.0.1:5000/devsecops-app";

  # The chart as a .tgz for k3s' Helm controller. Its files/ links to observability/ resolve
  # inside the source tree.
  chart = pkgs.runCommand "devsecops-app-chart-${common.version}.tgz"
    {
      nativeBuildInputs = [ pkgs.kubernetes-helm ];
      chartSrc = lib.fileset.toSource {
        root = ../.;
        fileset = lib.fileset.unions [ ../k8s/chart ../observability/prometheus/rules ../observability/grafana/dashboards ];
      };
    } ''
    export HOME=$TMPDIR
    helm package "$chartSrc/k8s/chart" --destination "$TMPDIR/out"
    mv "$TMPDIR"/out/*.tgz "$out"
  '';
in
{
  inherit craneLib common cargoArtifacts rustSrc advisory-db;
  inherit devsecops-app devsecops devsecops-app-static image image-tarball chart;
  check-yanked = import ./check-yanked.nix { inherit pkgs src advisory-db; };
}
