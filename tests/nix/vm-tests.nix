# The VM tests' arguments to runNixOSTest (name, nodes, testScript), evaluated without nixpkgs or a
# build: placeholders stand in for the flake's packages. tests/nix/test_nix.py compiles each
# testScript as the Python the test driver runs; eval-modules.nix evaluates the nodes.
{ extraPkgs ? { } }:

let
  storePath = name: "/nix/store/00000000000000000000000000000000-${name}";
  fakeDrv = name: { type = "derivation"; outPath = storePath name; inherit name; };
  pkgs = {
    testers.runNixOSTest = test: test;
    writeText = name: _: storePath name;
  } // extraPkgs;
  project = {
    common.version = "0.1.0";
    devsecops-app = fakeDrv "devsecops-app";
    devsecops-app-static = fakeDrv "devsecops-app-static";
    devsecops = fakeDrv "devsecops";
    chart = fakeDrv "devsecops-app-chart.tgz";
    image-tarball = fakeDrv "devsecops-app.tar.gz" // { imageName = "127.0.0.1:5000/devsecops-app"; };
  };
  nixosModules = {
    devsecops-app = ../../nixos-modules/devsecops-app.nix;
    appliance = ../../nixos-modules/appliance;
  };
in
{
  service = import ../../vm-tests/service.nix { inherit pkgs project nixosModules; };
  appliance = import ../../vm-tests/appliance.nix {
    inherit pkgs project nixosModules;
    advisory-db = storePath "advisory-db";
  };
}
