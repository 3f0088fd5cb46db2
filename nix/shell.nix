# `nix develop`: every tool scripts/test.sh and devsecops.toml call, from nixpkgs instead of the
# installs the test command makes on a bare Debian machine.
{ pkgs, project }:

pkgs.mkShell {
  inputsFrom = [ project.devsecops-app ];
  packages = with pkgs; [
    # Rust
    cargo
    rustc
    clippy
    rustfmt
    cargo-nextest
    cargo-deny
    cargo-audit
    cargo-auditable
    cargo-fuzz
    # Service tests and benchmarks
    postgresql
    wrk
    curl
    python3
    python3Packages.pytest
    python3Packages.pyyaml
    python3Packages.jsonschema
    schemathesis
    chromium
    # Scanners of the project's gate
    gitleaks
    semgrep
    checkov
    hadolint
    shellcheck
    trivy
    zizmor
    # Kubernetes and observability
    kubernetes-helm
    kubectl
    kustomize
    prometheus
    prometheus-alertmanager
    grafana-alloy
    grafana-loki
    # Nix (tests/nix: systemd-analyze on the rendered units, shfmt to parse the VM tests' commands)
    nixpkgs-fmt
    deadnix
    systemd
    shfmt
    # CI definitions (tests/ci parses the Jenkinsfile with Groovy)
    groovy
  ];
  # The advisory database the offline audits read (scripts/lib.sh prepare_advisory_db).
  DEVSECOPS_ADVISORY_DB = project.advisory-db;
}
