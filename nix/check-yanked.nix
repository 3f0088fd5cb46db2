# `nix run .#check-yanked`: deny.toml's `yanked = "deny"`, which no sandboxed check can enforce (the
# flake's `deny` check has no crates.io index: cargo-deny only warns that it cannot look). Runs
# nix/check-yanked.sh on a copy of the flake's source with the pinned advisory-db input; needs
# crates.io, so it runs outside the sandbox (the GitHub workflow's step after `nix flake check`).
{ pkgs, src, advisory-db }:

pkgs.writeShellApplication {
  name = "check-yanked";
  runtimeInputs = [ pkgs.cargo pkgs.cargo-deny pkgs.git pkgs.coreutils pkgs.findutils ];
  text = ''
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cp -r ${src} "$work/source"
    chmod -R u+w "$work/source"
    DEVSECOPS_ADVISORY_DB=${advisory-db} "$work/source/nix/check-yanked.sh" "$work/source"
  '';
}
