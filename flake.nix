{
  description = "devsecops-platform: the devsecops-app service, the devsecops security pipeline, a distroless image and a k3s appliance";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    crane.url = "github:ipetkov/crane";
    # The RustSec advisory database, pinned: cargo-audit in `nix flake check` reads it offline.
    advisory-db = {
      url = "github:rustsec/advisory-db";
      flake = false;
    };
  };

  outputs = { self, nixpkgs, crane, advisory-db }:
    let
      # The VM tests and the appliance need KVM on Linux; the packages build on both architectures.
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      packagesFor = pkgs: import ./nix/packages.nix { inherit pkgs crane advisory-db; src = self; };
    in
    {
      packages = forAllSystems (pkgs:
        let project = packagesFor pkgs;
        in {
          inherit (project) devsecops-app devsecops-app-static devsecops image image-tarball chart;
          default = project.devsecops-app;
        } // nixpkgs.lib.optionalAttrs (pkgs.stdenv.hostPlatform.system == "x86_64-linux") {
          # The appliance's disk image (the "qemu" image variant: qcow2, BIOS, GRUB), from nixosConfigurations.appliance.
          appliance-image = self.nixosConfigurations.appliance.config.system.build.images.qemu;
        });

      apps = forAllSystems (pkgs:
        let project = packagesFor pkgs;
        in {
          default = {
            type = "app";
            program = "${project.devsecops-app}/bin/devsecops-app";
            meta.description = "Run the service with its embedded defaults (SQLite, 127.0.0.1:8080)";
          };
          devsecops = {
            type = "app";
            program = "${project.devsecops}/bin/devsecops";
            meta.description = "The security pipeline CLI";
          };
          # Needs crates.io: run outside the sandbox, after `nix flake check` (docs/nix.md).
          check-yanked = {
            type = "app";
            program = "${project.check-yanked}/bin/check-yanked";
            meta.description = "Yanked crates in Cargo.lock, checked against crates.io's index (deny.toml: yanked = \"deny\")";
          };
        });

      checks = forAllSystems (pkgs:
        import ./nix/checks.nix {
          inherit pkgs advisory-db;
          project = packagesFor pkgs;
          src = self;
          nixosModules = self.nixosModules;
        });

      devShells = forAllSystems (pkgs: {
        default = import ./nix/shell.nix { inherit pkgs; project = packagesFor pkgs; };
      });

      formatter = forAllSystems (pkgs: pkgs.nixpkgs-fmt);

      nixosModules = {
        devsecops-app = ./nixos-modules/devsecops-app.nix;
        appliance = ./nixos-modules/appliance;
        hardening = ./nixos-modules/hardening.nix;
      };

      nixosConfigurations.appliance = nixpkgs.lib.nixosSystem {
        specialArgs = { project = packagesFor nixpkgs.legacyPackages.x86_64-linux; };
        modules = [
          self.nixosModules.appliance
          ./nix/appliance-host.nix
        ];
      };
    };
}
