# The appliance's observability as NixOS services, configured from the files in observability/
# (one source each): Prometheus with the project's rules scraping the service through the ingress,
# Alertmanager with the project's routes, Loki, Alloy shipping the pods' logs, and Grafana with
# provisioned datasources and dashboards. Everything listens on loopback; reach Grafana over SSH.
{ config, lib, pkgs, ... }:

let
  cfg = config.devsecops.appliance;
  obs = ../../observability;
  grafanaSecretKey = "/var/lib/grafana-secret/secret_key";

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
      scrapeConfigs = import ./scrape-configs.nix { inherit (cfg) hostName; };
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
