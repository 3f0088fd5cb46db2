# devsecops.appliance: a single-node k3s cluster that runs devsecops-app from the project's own chart
# and image, with Pod Security "restricted" enforced, every image present before k3s starts (airgap:
# nothing is pulled at boot), a local registry for later images, and the observability stack as
# NixOS services (observability.nix).
{ config, lib, pkgs, ... }:

let
  cfg = config.devsecops.appliance;
  inherit (lib) mkOption types;

  inherit (cfg) namespace;
  authSecret = "devsecops-app-auth";
  registry = "${cfg.registry.address}:${toString cfg.registry.port}";
  literal = import ../systemd-literal.nix { inherit lib; };

  admissionConfig = pkgs.writeText "pod-security-admission.json" (builtins.toJSON (import ./pod-security.nix));
in
{
  imports = [
    ./observability.nix
    ../hardening.nix
  ];

  options.devsecops.appliance = {
    enable = lib.mkEnableOption "the devsecops appliance (k3s, the service's chart, observability)";

    namespace = mkOption {
      type = types.str;
      default = "devsecops";
      readOnly = true;
      internal = true;
      description = "Namespace of the service's release (also read by observability.nix).";
    };

    hostName = mkOption {
      type = types.str;
      default = "devsecops.appliance.internal";
      description = "Host name the ingress serves the service on (also resolved locally to 127.0.0.1).";
    };

    chart = mkOption {
      type = types.package;
      description = "The packaged chart (.tgz): the flake's packages.<system>.chart.";
    };

    image = mkOption {
      type = types.package;
      description = "The service's image as a docker-archive tarball: the flake's packages.<system>.image-tarball.";
    };

    imageRepository = mkOption {
      type = types.str;
      default = "${registry}/devsecops-app";
      defaultText = lib.literalExpression ''"''${registry.address}:''${toString registry.port}/devsecops-app"'';
      description = "Repository the image tarball is named with; the chart runs that reference.";
    };

    imageTag = mkOption {
      type = types.str;
      description = "Tag of that image (the workspace version).";
    };

    apiTokenFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/secrets/devsecops-api-token";
      description = ''
        File with the service's bearer token, loaded into the ${authSecret} Secret at boot (never
        into the Nix store). Null lets the chart generate a random token on first install.
      '';
    };

    registry = {
      address = mkOption {
        type = types.str;
        default = "127.0.0.1";
        description = "Address of the local image registry (loopback: only this node pushes and pulls).";
      };
      port = mkOption {
        type = types.port;
        default = 5000;
        description = "Port of the local image registry.";
      };
    };

    # The service's own settings, given to the chart (values.yaml `app`); null keeps the chart's
    # default. Prometheus finds the metrics port by its name, whatever its number.
    app = {
      metricsPort = mkOption {
        type = types.nullOr types.port;
        default = null;
        description = "Port of the service's internal listener (/metrics, /debug/memory, /openapi.json). Null: the chart's app.metricsPort (9464).";
      };
      openapiPublic = mkOption {
        type = types.nullOr types.bool;
        default = null;
        description = "Whether the ingress also serves /openapi.json. Null: the chart's app.openapiPublic (true).";
      };
      trustedProxies = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = null;
        example = [ "10.42.0.0/16" ];
        description = ''
          Addresses or CIDR blocks whose X-Forwarded-For/Forwarded hops the service believes: the
          ingress controller's pods. Null: the chart's app.trustedProxies (k3s' pod network, where
          Traefik runs).
        '';
      };
    };

    backup = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Nightly online backups of the service's SQLite database (the chart's backup CronJob) onto a volume of their own.";
      };
      schedule = mkOption {
        type = types.str;
        default = "17 3 * * *";
        description = "When to back up, in Kubernetes cron syntax (UTC).";
      };
      keep = mkOption {
        type = types.ints.positive;
        default = 7;
        description = "Backups kept on the backup volume.";
      };
    };

    adminKeys = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "SSH public keys of the `admin` user (password login is off).";
    };
  };

  config = lib.mkIf cfg.enable {
    services.k3s = {
      enable = true;
      role = "server";
      # Addons kept: CoreDNS, Traefik (ingress), metrics-server, local-path storage, the service
      # load balancer. Their images come from the k3s airgap archive.
      extraFlags = [
        "--kube-apiserver-arg=admission-control-config-file=${admissionConfig}"
        "--write-kubeconfig-mode=0600"
        "--secrets-encryption"
      ];
      images = [
        config.services.k3s.package.airgap-images
        cfg.image
      ];
      # The service's limits and a JSON access log with the client address on k3s' Traefik
      # (./traefik-values.nix; k8s/platform/traefik-values.json).
      manifests.traefik-config.content = {
        apiVersion = "helm.cattle.io/v1";
        kind = "HelmChartConfig";
        metadata = {
          name = "traefik";
          namespace = "kube-system";
        };
        spec.valuesContent = builtins.toJSON (import ./traefik-values.nix);
      };
      manifests.devsecops-namespace.content = {
        apiVersion = "v1";
        kind = "Namespace";
        metadata = {
          name = namespace;
          labels = {
            "pod-security.kubernetes.io/enforce" = "restricted";
            "pod-security.kubernetes.io/audit" = "restricted";
            "pod-security.kubernetes.io/warn" = "restricted";
          };
        };
      };
      autoDeployCharts.devsecops-app = {
        package = cfg.chart;
        targetNamespace = namespace;
        values = import ./chart-values.nix {
          inherit (cfg) hostName imageRepository imageTag;
          authSecret = lib.optionalString (cfg.apiTokenFile != null) authSecret;
          app = lib.filterAttrs (_: v: v != null) cfg.app;
          backup = { enabled = cfg.backup.enable; inherit (cfg.backup) schedule keep; };
        };
      };
    };

    # The registry k3s' containerd resolves ${registry} to, over plain HTTP on loopback.
    services.dockerRegistry = {
      enable = true;
      listenAddress = cfg.registry.address;
      inherit (cfg.registry) port;
      enableGarbageCollect = true;
    };
    environment.etc."rancher/k3s/registries.yaml".text = builtins.toJSON {
      mirrors.${registry}.endpoint = [ "http://${registry}" ];
    };

    # The token Secret, from a file outside the store, before the chart needs it.
    systemd.services.devsecops-app-secret = lib.mkIf (cfg.apiTokenFile != null) {
      description = "Load the devsecops-app API token into Kubernetes";
      after = [ "k3s.service" ];
      requires = [ "k3s.service" ];
      wantedBy = [ "multi-user.target" ];
      path = [ config.services.k3s.package ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        LoadCredential = "api-token:${literal (toString cfg.apiTokenFile)}";
        Restart = "on-failure";
        RestartSec = "5s";
      };
      script = ''
        until k3s kubectl get namespace ${namespace} >/dev/null 2>&1; do sleep 2; done
        k3s kubectl -n ${namespace} create secret generic ${authSecret} \
          --from-file=api-token="$CREDENTIALS_DIRECTORY/api-token" \
          --dry-run=client -o yaml | k3s kubectl apply -f -
      '';
    };

    networking.hosts."127.0.0.1" = [ cfg.hostName ];

    # k3s needs forwarding between pods and the API; the firewall trusts the pod network interfaces
    # and opens SSH, HTTP(S) for the ingress and the API server.
    networking.firewall = {
      enable = true;
      allowedTCPPorts = [ 22 80 443 6443 ];
      trustedInterfaces = [ "cni0" "flannel.1" ];
    };

    users.users.admin = {
      isNormalUser = true;
      extraGroups = [ "wheel" ];
      openssh.authorizedKeys.keys = cfg.adminKeys;
    };

    environment.systemPackages = [ pkgs.kubernetes-helm pkgs.curl pkgs.jq ];
  };
}
