# The appliance host of nixosConfigurations.appliance: a VM or small server booted from the qcow2
# image (packages.x86_64-linux.appliance-image). Site-specific settings (SSH keys, secrets, host
# name) go in a module of your own next to this one.
{ lib, project, modulesPath, ... }:

{
  imports = [ (modulesPath + "/profiles/qemu-guest.nix") ];

  nixpkgs.hostPlatform = "x86_64-linux";
  system.stateVersion = "26.05";
  networking.hostName = "devsecops-appliance";

  devsecops.appliance = {
    enable = true;
    chart = project.chart;
    image = project.image-tarball;
    imageTag = project.common.version;
  };

  # The published image has no login until a site module adds devsecops.appliance.adminKeys (no
  # password exists anywhere): allow building it without one.
  users.allowNoPasswordLogin = lib.mkDefault true;

  # The layout of the "qemu" image variant: one ext4 root labelled nixos, GRUB on /dev/vda (BIOS).
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  boot.loader.grub = {
    enable = true;
    device = "/dev/vda";
  };
  boot.growPartition = true;
}
