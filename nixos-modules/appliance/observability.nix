# The appliance's observability as NixOS services, configured from the files in observability/
# (one source each): Prometheus with the project's rules scraping the service through the ingress,
# Alertmanager with the project's routes, Loki, Alloy shipping the pods' logs, and Grafana with
# provisioned datasources and dashboards. Everything listens on loopback; reach Grafana over SSH.
{ config, lib, pkgs, ... }:

let
  cfg = config.devsecops.appliance;
  obs = ../../observability;
  grafanaSecretKey = "/var/lib/grafana-secret/secret_key";

  # Prometheus finds the service's pods through the Kubernetes API as this service account, which
  # may only read the release namespace's endpoints, pods and services; its token and the cluster
  # CA are copied for the prometheus user at boot (never into the store).
  discovery = {
    account = "prometheus-appliance";
    tokenSecret = "prometheus-appliance-token";
    directory = "/run/prometheus-k3s";
  };

  # The project's datasources with the appliance's loopback URLs; uids and settings stay as in the file.
  datasources = pkgs.runCommand "grafana-datasources.yaml" { nativeBuildInputs = [ pkgs.yq-go ]; } ''
    yq '(.datasources[] | select(.uid == "prometheus")).url = "http://127.0.0.1:${toString config.services.prometheus.port}"
      | (.datasources[] | select(.uid == "loki")).url = "http://127.0.0.1:3100"' \
      ${obs}/grafana/provisioning/datasources/datasources.yaml > $out
  '';

  # The project's dashboard provider, pointed at the generated dashboards in the store.
  dashboardProviders = pkgs.runCommand "grafana-dashboard-providers.yaml" { nativeBuildInputs = [ pkgs.yq-go ]; } ''
    yq '.providers[0].options.path = "${obs}/grafana/dashboards"' \
      ${obs}/grafana/provisioning/dashboards/dashboards.yaml > $out
  '';
in
{
  options.devsecops.appliance.grafanaAdminPasswordFile = lib.mkOption {
    type = lib.types.nullOr lib.types.path;
    default = null;
    example = "/run/secrets/grafana-admin-password";
    description = "File with Grafana's admin password (kept out of the Nix store). Null: Grafana's default, changed at first login.";
  };

  config = lib.mkIf cfg.enable {
    services.prometheus = {
      enable = true;
      listenAddress = "127.0.0.1";
      port = 9090;
      globalConfig = {
        scrape_interval = "15s";
        evaluation_interval = "15s";
      };
      ruleFiles = [ "${obs}/prometheus/rules/devsecops-app.rules.yml" ];
      scrapeConfigs = import ./scrape-configs.nix { inherit (cfg) namespace; credentialsDirectory = discovery.directory; };
      # The build checks the configuration without the credential files, which exist only at run
      # time (promtool checks the discovery's CA file unless told syntax only).
      checkConfig = "syntax-only";
      alertmanagers = [
        { static_configs = [{ targets = [ "127.0.0.1:${toString config.services.prometheus.alertmanager.port}" ]; }]; }
      ];
      alertmanager = {
        enable = true;
        listenAddress = "127.0.0.1";
        port = 9093;
        # The project's routing tree; its webhook receivers point at the alert relay to configure.
        configText = builtins.readFile (obs + "/alertmanager/alertmanager.yml");
      };
    };

    services.k3s.manifests.prometheus-discovery.content = [
      {
        apiVersion = "v1";
        kind = "ServiceAccount";
        metadata = { name = discovery.account; inherit (cfg) namespace; };
      }
      {
        apiVersion = "rbac.authorization.k8s.io/v1";
        kind = "Role";
        metadata = { name = discovery.account; inherit (cfg) namespace; };
        rules = [{ apiGroups = [ "" ]; resources = [ "endpoints" "pods" "services" ]; verbs = [ "get" "list" "watch" ]; }];
      }
      {
        apiVersion = "rbac.authorization.k8s.io/v1";
        kind = "RoleBinding";
        metadata = { name = discovery.account; inherit (cfg) namespace; };
        roleRef = { apiGroup = "rbac.authorization.k8s.io"; kind = "Role"; name = discovery.account; };
        subjects = [{ kind = "ServiceAccount"; name = discovery.account; inherit (cfg) namespace; }];
      }
      {
        # A long-lived token Kubernetes fills in for the account.
        apiVersion = "v1";
        kind = "Secret";
        type = "kubernetes.io/service-account-token";
        metadata = {
          name = discovery.tokenSecret;
          inherit (cfg) namespace;
          annotations."kubernetes.io/service-account.name" = discovery.account;
        };
      }
    ];

    # Prometheus reads the discovery's CA file once, when it loads its configuration: the kubernetes
    # discoverer's HTTP client is made then (prometheus/common config/http_config.go,
    # NewTLSConfigWithContext reads ca_file; the discovery manager logs "Cannot create service
    # discovery" and drops that job until the next load). So Prometheus starts after the files are
    # written. Wants, not Requires: a failed copy must not keep Prometheus down for good (a
    # dependency failure is never retried, while this unit restarts on failure); when a later run
    # succeeds it restarts Prometheus, which then loads the CA. The bearer token is read on every
    # request and a changed CA on the next one, so a running Prometheus follows a rotation.
    systemd.services.prometheus = {
      wants = [ "prometheus-k3s-credentials.service" ];
      after = [ "prometheus-k3s-credentials.service" ];
    };

    systemd.services.prometheus-k3s-credentials = {
      description = "Give Prometheus its read-only Kubernetes credentials";
      after = [ "k3s.service" ];
      requires = [ "k3s.service" ];
      wantedBy = [ "multi-user.target" ];
      path = [ config.services.k3s.package pkgs.coreutils ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        Restart = "on-failure";
        RestartSec = "5s";
        # Prometheus waits for this unit: if k3s has not made the token by then, Prometheus starts
        # without the discovery and this unit tries again (and restarts Prometheus once done).
        TimeoutStartSec = "15min";
        UMask = "0077";
      };
      script = ''
        secret() {
          k3s kubectl -n ${cfg.namespace} get secret ${discovery.tokenSecret} -o "jsonpath={.data.$1}" 2>/dev/null
        }
        until [ -n "$(secret token)" ] && [ -n "$(secret 'ca\.crt')" ]; do sleep 2; done
        install -d -m 0750 -o root -g prometheus ${discovery.directory}
        secret token | base64 -d > ${discovery.directory}/token
        secret 'ca\.crt' | base64 -d > ${discovery.directory}/ca.crt
        chgrp prometheus ${discovery.directory}/token ${discovery.directory}/ca.crt
        chmod 0440 ${discovery.directory}/token ${discovery.directory}/ca.crt
        # A Prometheus already running (this unit failed or timed out first, or ran again) loads
        # the CA only when it starts; one still waiting for this unit is left alone.
        systemctl try-restart --no-block prometheus.service
      '';
    };

    services.loki = {
      enable = true;
      configFile = "${obs}/loki/loki.yaml";
    };

    # Alloy tails the pods' log files; reading them needs CAP_DAC_READ_SEARCH and nothing else.
    services.alloy = {
      enable = true;
      configPath = "${obs}/alloy/appliance.alloy";
    };
    systemd.services.alloy.serviceConfig = {
      AmbientCapabilities = [ "CAP_DAC_READ_SEARCH" ];
      CapabilityBoundingSet = [ "CAP_DAC_READ_SEARCH" ];
    };

    systemd.services.grafana-secret-key = {
      description = "Generate Grafana's secret key once";
      before = [ "grafana.service" ];
      requiredBy = [ "grafana.service" ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        UMask = "0077";
      };
      script = ''
        mkdir -p ${dirOf grafanaSecretKey}
        [ -s ${grafanaSecretKey} ] || head -c 32 /dev/urandom | base64 > ${grafanaSecretKey}
        chown grafana ${dirOf grafanaSecretKey} ${grafanaSecretKey}
      '';
    };

    services.grafana = {
      enable = true;
      settings = {
        server = {
          http_addr = "127.0.0.1";
          http_port = 3000;
          domain = "localhost";
        };
        security = {
          # Signs sessions and encrypts datasource secrets; generated once on the host below.
          secret_key = "$__file{${grafanaSecretKey}}";
        } // lib.optionalAttrs (cfg.grafanaAdminPasswordFile != null) {
          admin_password = "$__file{${toString cfg.grafanaAdminPasswordFile}}";
        };
        analytics.reporting_enabled = false;
        users.allow_sign_up = false;
      };
      provision = {
        enable = true;
        datasources.path = datasources;
        dashboards.path = dashboardProviders;
      };
    };
  };
}
