# Host hardening for the appliance: key-only SSH without root, a firewall that drops by default,
# kernel settings that hide kernel pointers and logs, and no mutable users. Settings k3s needs
# (IP forwarding, bridge netfilter) are left to the k3s module.
{ lib, ... }:

{
  services.openssh = {
    enable = true;
    openFirewall = true;
    settings = {
      PasswordAuthentication = false;
      KbdInteractiveAuthentication = false;
      PermitRootLogin = "no";
      X11Forwarding = false;
      MaxAuthTries = 3;
    };
  };

  networking.firewall = {
    enable = true;
    allowPing = true;
    logRefusedConnections = true;
  };

  users.mutableUsers = false;
  security.sudo.wheelNeedsPassword = lib.mkDefault false;
  nix.settings.allowed-users = [ "@wheel" ];

  boot.kernel.sysctl = {
    "kernel.kptr_restrict" = 2;
    "kernel.dmesg_restrict" = 1;
    "kernel.unprivileged_bpf_disabled" = 1;
    "net.core.bpf_jit_harden" = 2;
    "net.ipv4.conf.all.accept_redirects" = 0;
    "net.ipv4.conf.all.send_redirects" = 0;
    "net.ipv4.conf.all.log_martians" = 1;
    "net.ipv6.conf.all.accept_redirects" = 0;
  };
}
